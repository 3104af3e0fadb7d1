"""`untwine activations`: any model's layers on any ground-truth dataset, written as an activations
folder: the layers listed, `codes` bit-equal to the evaluation's, every pooling's rows, resuming,
one-line errors, and the chain activations -> sae train -> sae evaluate --factors -> report images."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from untwine import data
from untwine.activations import layout
from untwine.activations.hooks import ModelHooks
from untwine.activations.models import list_layers, write_model_activations
from untwine.activations.reader import read_activations
from untwine.cli import main
from untwine.errors import UntwineError
from untwine.train import open_run, train

N = 32  # the toy grid: every image once


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 16x16 grid of squares (x 4, y 4, size 2) and a beta-VAE trained on it for a few steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("acts")
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    np.savez(root / "toy.npz", images=imgs, factors=f)
    train("beta_vae", str(root / "toy.npz"), steps=3, out=root / "run", batch_size=8, seed=0)
    yield root
    torch.set_num_threads(threads)


def _one_error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and "Traceback" not in err
    return err


def test_list_layers_prints_every_layer_with_its_shape(toy, capsys):
    assert main(["activations", str(toy / "run"), "--list-layers"]) == 0
    out = capsys.readouterr().out
    rows = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"^  (\S+)\s+(\S+)\s+(.+)$", out, re.M)}
    assert rows["codes"][0] == "10"
    assert rows["encoder.features.0"] == ("32x8x8", "Conv2d")
    assert rows["encoder.features.6"] == ("64x1x1", "Conv2d")
    assert rows["encoder.features.9"] == ("256", "Linear")
    assert "decoder.fc.0" not in rows and "encoder" not in rows  # not run by the encoder / not one tensor
    assert list(rows)[0] == "codes"


def test_codes_are_bit_equal_to_the_evaluation_encoders_means(toy, tmp_path):
    s = write_model_activations(tmp_path / "a", toy / "run", layers=["codes", "encoder.heads.mean"], rows=N,
                                chunk=500)
    inputs = np.load(tmp_path / "a" / layout.INPUTS)
    assert sorted(inputs.tolist()) == list(range(N)) and s["rows"] == N  # distinct rows
    run = open_run(toy / "run")
    ds = run.dataset()
    want = run.encoder("mean").encode_indices(ds, inputs).codes  # what `untwine evaluate` computes
    got = read_activations(tmp_path / "a" / "layer_codes")
    assert got.dtype == np.float32 and np.array_equal(got.astype(np.float64), want)
    assert np.array_equal(np.load(tmp_path / "a" / layout.FACTORS), ds.factors_of(inputs))
    assert np.array_equal(np.load(tmp_path / "a" / layout.ROWS), np.arange(N))


def _conv0(toy, inputs) -> torch.Tensor:
    model = open_run(toy / "run").load_model()
    with torch.no_grad():
        return model.encoder.features[0](data.load(str(toy / "toy.npz")).observations_at(inputs))


@pytest.mark.parametrize("pool", ["mean", "max", "flatten", "positions"])
def test_each_pooling_rows_and_values(toy, tmp_path, pool):
    out = tmp_path / pool
    s = write_model_activations(out, toy / "run", layers=["encoder.features.0", "encoder.features.1"], rows=N,
                                pool=pool, chunk=500)
    inputs = np.load(out / layout.INPUTS)
    conv = _conv0(toy, inputs)  # [N, 32, 8, 8], before the in-place ReLU
    pre = read_activations(out / "layer_encoder.features.0")
    post = read_activations(out / "layer_encoder.features.1")
    want = {"mean": conv.mean((2, 3)), "max": conv.amax((2, 3)), "flatten": conv.reshape(N, -1),
            "positions": conv.permute(0, 2, 3, 1).reshape(-1, 32)}[pool].numpy()
    assert pre.shape == want.shape == (s["rows"], s["dims"]["encoder.features.0"])
    np.testing.assert_allclose(pre, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post, np.maximum(want, 0) if pool != "mean" else conv.clamp(min=0).mean((2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert (pre < 0).any() and not (post < 0).any()  # the ReLU ran in place after the capture: no leak
    rows = np.load(out / layout.ROWS)
    if pool == "positions":
        pos = np.load(out / layout.POSITIONS)
        assert pos.shape == (N * 64, 2) and s["grid"] == [8, 8]
        assert np.array_equal(rows, np.repeat(np.arange(N), 64))
        i = 5 * 64 + 3 * 8 + 6  # input 5, position (3, 6)
        assert pos[i].tolist() == [3, 6] and np.allclose(pre[i], conv[5, :, 3, 6].numpy(), atol=1e-6)
        fac = np.load(out / layout.FACTORS)
        assert np.array_equal(fac[i], data.load(str(toy / "toy.npz")).factors_of(inputs[5:6])[0])
    else:
        assert not (out / layout.POSITIONS).exists() and np.array_equal(rows, np.arange(N))


def test_kill_and_resume_is_bit_identical(toy, tmp_path, monkeypatch):
    kw = dict(layers=["codes", "encoder.features.2"], rows=40, pool="max", batch_size=4, chunk=8)
    write_model_activations(tmp_path / "full", toy / "run", **kw)
    real = ModelHooks.capture
    calls = {"n": 0}

    def dies(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 6:  # in the third shard
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(ModelHooks, "capture", dies)
    with pytest.raises(KeyboardInterrupt):
        write_model_activations(tmp_path / "cut", toy / "run", **kw)
    monkeypatch.setattr(ModelHooks, "capture", real)
    s = write_model_activations(tmp_path / "cut", toy / "run", **kw)
    assert s["resumed_items"] == 16
    for name in ("layer_codes", "layer_encoder.features.2"):
        files = sorted(p.name for p in (tmp_path / "full" / name).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "cut" / name).iterdir()) and len(files) == 6
        for f in files:
            assert (tmp_path / "full" / name / f).read_bytes() == (tmp_path / "cut" / name / f).read_bytes(), f
    for f in (layout.ROWS, layout.FACTORS, layout.INPUTS):
        assert (tmp_path / "full" / f).read_bytes() == (tmp_path / "cut" / f).read_bytes()
    # another run into the same folder is refused
    with pytest.raises(UntwineError, match="different run"):
        write_model_activations(tmp_path / "cut", toy / "run", **{**kw, "pool": "mean"})


def test_bad_inputs_are_one_line(toy, tmp_path, capsys):
    run = str(toy / "run")
    err = _one_error_line(capsys, ["activations", run, "--layers", "codes,encoder.nope", "--out", str(tmp_path / "o")])
    assert "unknown layer 'encoder.nope'" in err and "encoder.features.0" in err and "codes" in err
    err = _one_error_line(capsys, ["activations", run, "--dataset", "dsprites", "--layers", "codes", "--out",
                                   str(tmp_path / "o")])
    assert "(1, 64, 64)" in err and "(1, 16, 16)" in err
    assert "holds sentences" in _one_error_line(capsys, ["activations", run, "--dataset", "concepts", "--list-layers"])
    bare = tmp_path / "bare"
    shutil.copytree(toy / "run", bare)
    shutil.rmtree(bare / "checkpoints")
    assert "no checkpoint" in _one_error_line(capsys, ["activations", str(bare), "--list-layers"])
    err = _one_error_line(capsys, ["activations", run, "--layers", "encoder.features.0,encoder.features.2",
                                   "--pool", "positions", "--out", str(tmp_path / "o")])
    assert "8x8" in err and "4x4" in err
    assert "multiple of --batch-size" in _one_error_line(
        capsys, ["activations", run, "--layers", "codes", "--chunk", "300", "--out", str(tmp_path / "o")])
    # a damaged shard names the command that repairs it
    out = tmp_path / "ok"
    assert main(["activations", run, "--layers", "codes", "--rows", "8", "--out", str(out)]) == 0
    shard = out / "layer_codes" / layout.shard_name(0)
    shard.write_bytes(shard.read_bytes()[:-3])
    err = _one_error_line(capsys, ["health", str(out / "layer_codes")])
    assert "run the same `untwine activations` command again" in err


def test_any_module_from_python(toy, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 16 * 16, 5))
    ds = str(toy / "toy.npz")
    layers = {k: s for k, s, _ in list_layers(net, ds)}
    assert layers == {"0": (4, 16, 16), "1": (4, 16, 16), "2": (1024,), "3": (5,)}  # no encoder: no codes
    s = write_model_activations(tmp_path / "m", net, dataset=ds, layers=["3"], rows=N, chunk=500)
    x = data.load(ds).observations_at(np.load(tmp_path / "m" / layout.INPUTS))
    with torch.no_grad():
        assert np.array_equal(read_activations(tmp_path / "m" / "layer_3"), net(x).numpy())
    assert s["dataset"] == ds
    with pytest.raises(UntwineError, match="no encoder"):
        write_model_activations(tmp_path / "c", net, dataset=ds, layers=["codes"], rows=4)
    with pytest.raises(UntwineError, match=r"do not fit the model"):
        list_layers(torch.nn.Linear(7, 2), ds)


def test_chain_to_the_report_shows_each_latents_top_images(toy, tmp_path, capsys):
    acts, sae = tmp_path / "acts", tmp_path / "sae"
    layer = str(acts / "layer_encoder.features.2")
    assert main(["activations", str(toy / "run"), "--layers", "encoder.features.2", "--pool", "positions",
                 "--rows", "32", "--out", str(acts)]) == 0
    assert main(["sae", "train", layer, "--arch", "topk", "--latents", "16", "--k", "3", "--steps", "30",
                 "--batch-size", "64", "--out", str(sae), "--no-progress", "--device", "cpu"]) == 0
    assert main(["sae", "evaluate", str(sae), layer, "--factors", str(acts / layout.FACTORS), "--no-baselines",
                 "--metrics", "mig", "--device", "cpu"]) == 0
    ev = json.loads((sae / "evaluation.json").read_text())
    tops = ev["top_images"]
    assert tops["dataset"] == str(toy / "toy.npz") and tops["grid"] == [4, 4]
    assert set(tops["latents"]) == {str(j) for j in ev["shown"]} and ev["shown"]
    # each entry is the row of the largest codes, its dataset index and position, one per image
    from untwine.sae import load_sae

    module = load_sae(sae)
    x = read_activations(layer)
    with torch.no_grad():
        codes = module.encode(torch.from_numpy(x)).numpy()
    inputs, rows, pos = (np.load(acts / f) for f in (layout.INPUTS, layout.ROWS, layout.POSITIONS))
    for j, entries in tops["latents"].items():
        assert len({e["index"] for e in entries}) == len(entries)
        vals = [e["value"] for e in entries]
        assert vals == sorted(vals, reverse=True)
        for e in entries:
            assert e["index"] == inputs[rows[e["row"]]] and e["position"] == pos[e["row"]].tolist()
            assert e["value"] == pytest.approx(float(codes[e["row"], int(j)]), rel=1e-4)
        if entries:
            assert vals[0] == pytest.approx(float(codes[:, int(j)].max()), rel=1e-4)
    assert main(["report", str(sae)]) == 0
    page = (sae / "report.html").read_text()
    assert 'id="images"' in page and 'id="sentences"' not in page
    strips = re.findall(r'alt="top images of latent (\d+)"', page)
    assert strips and set(strips) <= set(tops["latents"])
    assert len(page) < 400_000
    # untwine health reads the whole folder (module-path layers)
    assert main(["health", str(acts), "--max-rows", "100", "--json", str(tmp_path / "h.json")]) == 0
    assert list(json.loads((tmp_path / "h.json").read_text())) == ["layer_encoder.features.2"]
    capsys.readouterr()


def test_memory_is_bounded_by_a_shard(toy, tmp_path):
    import tracemalloc

    rows, chunk = 1600, 100
    tracemalloc.start()
    try:
        write_model_activations(tmp_path / "big", toy / "run", layers=["encoder.features.0"], rows=rows,
                                pool="flatten", batch_size=50, chunk=chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    layer = rows * 32 * 8 * 8 * 4  # the whole layer, float32
    assert read_activations(tmp_path / "big" / "layer_encoder.features.0").nbytes == layer
    assert peak < layer / 3, (peak, layer)  # a few shards' worth (one is layer / 16), never the whole layer


@pytest.mark.parametrize("model", ["qlae", "infowgan_gp", "factor_vae", "seq_vae"])
def test_every_model_kind_codes_equal_the_evaluations(toy, tmp_path, model):
    dataset = "sines" if model.startswith("seq") else str(toy / "toy.npz")
    train(model, dataset, steps=2, out=tmp_path / "run", batch_size=8, seed=0)
    layers = {k: s for k, s, _ in list_layers(tmp_path / "run")}
    conv = next(k for k, s in layers.items() if len(s) >= 2)  # the first convolutional map
    s = write_model_activations(tmp_path / "a", tmp_path / "run", layers=["codes", conv], rows=16, chunk=500,
                                pool="max")
    assert s["dims"] == {"codes": layers["codes"][0], conv: layers[conv][0]}
    run = open_run(tmp_path / "run")
    inputs = np.load(tmp_path / "a" / layout.INPUTS)
    want = run.encoder("mean").encode_indices(run.dataset(), inputs).codes
    assert np.array_equal(read_activations(tmp_path / "a" / "layer_codes").astype(np.float64), want)
    p = write_model_activations(tmp_path / "p", tmp_path / "run", layers=[conv], rows=4, pool="positions", chunk=500)
    cells = int(np.prod(layers[conv][1:]))
    assert p["rows"] == 4 * cells and np.load(tmp_path / "p" / layout.POSITIONS).shape == (4 * cells, len(layers[conv]) - 1)


def test_a_kill_before_the_first_manifest_resumes(toy, tmp_path):
    """Killed between a layer's first shard and its first manifest: the folder is still ours."""
    kw = dict(layers=["codes"], rows=8, chunk=500)
    write_model_activations(tmp_path / "full", toy / "run", **kw)
    cut = tmp_path / "cut" / "layer_codes"
    cut.mkdir(parents=True)
    (cut / layout.shard_name(0)).write_bytes(b"half a shard")
    write_model_activations(tmp_path / "cut", toy / "run", **kw)
    for f in sorted((tmp_path / "full" / "layer_codes").iterdir()):
        assert f.read_bytes() == (cut / f.name).read_bytes()
