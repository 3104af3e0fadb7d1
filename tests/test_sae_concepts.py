"""An SAE on activations with known concepts: `untwine sae evaluate --factors` beside the
concept baselines (evaluation.json) and `untwine report SAE_DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from untwine.activations.shards import ShardWriter
from untwine.cli import main as cli_main
from untwine.concepts.baselines import split_rows
from untwine.concepts.probing import sparse_probing
from untwine.concepts.sae_evaluation import EVALUATION
from untwine.sae import load_sae, train_sae

pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread on a shared machine (conftest)

SIZES = (3, 4, 2)
NAMES = ["colour", "shape", "size"]


@pytest.fixture(scope="module")
def concept_acts(tmp_path_factory):
    """300 rows of additive factors (one random vector per factor value, rotated, plus noise)
    written as an `untwine lm activations` directory with sentences, and a small SAE on them."""
    root = tmp_path_factory.mktemp("concepts")
    rng = np.random.default_rng(0)
    n, d = 300, 12
    f = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    atoms = [rng.standard_normal((s, d)) for s in SIZES]
    x = sum(a[f[:, k]] for k, a in enumerate(atoms)) + 0.05 * rng.standard_normal((n, d))
    x = x.astype(np.float32)
    w = ShardWriter(root / "acts" / "layer_0", {"model": "toy", "layer": 0})
    w.append(x[:200], np.arange(200))
    w.append(x[200:], np.arange(200, n))
    w.finish()
    np.save(root / "acts" / "rows.npy", np.arange(n))
    np.save(root / "acts" / "factors.npy", f)
    (root / "acts" / "sentences.txt").write_text("".join(f"the {NAMES[0]} {r[0]} {r[1]} {r[2]} thing\n" for r in f))
    (root / "acts" / "activations.json").write_text(json.dumps({"factor_names": NAMES, "factor_sizes": list(SIZES)}))
    np.save(root / "acts.npy", x)
    sae = train_sae(root / "acts.npy", arch="topk", latents=16, k=3, steps=40, batch_size=128, out=root / "sae",
                    device="cpu", progress=False)
    return root, sae


def test_evaluate_with_factors_writes_the_baselines_beside_the_sae(concept_acts, capsys):
    root, sae = concept_acts
    out = root / "flat.json"
    assert cli_main(["sae", "evaluate", str(sae), str(root / "acts" / "layer_0"), "--factors",
                     str(root / "acts" / "factors.npy"), "--device", "cpu", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "supervised" in text and str(sae / EVALUATION) in text
    ev = json.loads((sae / EVALUATION).read_text())
    assert ev["factor_names"] == NAMES and ev["factor_sizes"] == list(SIZES)
    base = ev["baselines"]
    assert set(base) >= {"raw", "pca", "supervised", "supervised_projection", "edit", "probe_accuracy"}
    # the supervised dictionary is the reference of a perfect concept dictionary
    assert base["supervised"]["dci_disentanglement"] >= base["raw"]["dci_disentanglement"]
    assert base["supervised"]["dci_disentanglement"] > 0.9
    assert base["pca"]["latents"] == 12  # as many components as latents, at most the width
    sae_scores = ev["sae"]
    # known answers: the SAE's codes of every row, the evaluation's train / test split
    x = np.load(root / "acts.npy")
    f = np.load(root / "acts" / "factors.npy")
    codes = load_sae(sae, "cpu").encode(torch.from_numpy(x)).double().numpy()
    tr, te = split_rows(len(x), 0)
    probes = sparse_probing(codes[tr], f[tr], codes[te], f[te], factor_names=NAMES, seed=0)
    for k in (1, 2, 5):
        assert 0.0 <= sae_scores[f"sparse_probe_k{k}_mean"] <= 1.0
        assert sae_scores[f"sparse_probe_k{k}_mean"] == pytest.approx(probes[f"sparse_probe_k{k}_mean"])
        assert sae_scores[f"sparse_probe_k{k}_mean"] == pytest.approx(np.mean([sae_scores[f"sparse_probe_k{k}_{n}"] for n in NAMES]))
    for key in ("edit_flip_mean", "edit_keep_mean", "edit_success_mean", "dci_disentanglement", "fvu"):
        assert key in sae_scores
    nmi = np.array(ev["matrices"]["normalized_mi"])
    assert nmi.shape == (16, 3) and np.isfinite(nmi).all()
    assert np.array(ev["matrices"]["dci_importance"]).shape == (16, 3)
    assert ev["shown"] and set(ev["top_sentences"]) == {str(j) for j in ev["shown"]}
    first = next(iter(ev["top_sentences"].values()))
    assert first and first[0][1].startswith("the colour")
    # each shown latent's sentences: those of the rows of its largest positive codes, largest first
    sentences = (root / "acts" / "sentences.txt").read_text().splitlines()
    for j, listed in ev["top_sentences"].items():
        z = codes[:, int(j)]
        top = [i for i in np.argsort(-z, kind="stable")[:5] if z[i] > 0]
        assert [s for _, s in listed] == [sentences[i] for i in top], j
        assert np.allclose([v for v, _ in listed], z[top], rtol=1e-5)
    assert len(ev["edit_latents"]) == 3 and all(len(s) == 5 for s in ev["edit_latents"])
    flat = json.loads(out.read_text())
    assert "mmcs" not in flat and "l0" in flat and "supervised.dci_disentanglement" in flat


def test_report_of_an_sae_directory(concept_acts, capsys):
    root, sae = concept_acts
    if not (sae / EVALUATION).is_file():
        assert cli_main(["sae", "evaluate", str(sae), str(root / "acts" / "layer_0"), "--factors",
                         str(root / "acts" / "factors.npy"), "--device", "cpu"]) == 0
    assert cli_main(["report", str(sae)]) == 0
    page = (sae / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # heatmaps and training curves
    assert "normalised MI" in page and "supervised" in page and "this SAE" in page
    assert "the colour" in page  # top sentences
    ev = json.loads((sae / EVALUATION).read_text())
    for j, listed in ev["top_sentences"].items():  # every shown latent with its own top sentences
        assert f"latent {j}" in page and all(s in page for _, s in listed), j
    assert "http://" not in page and "https://" not in page
    assert "cfg.json" in page


def test_report_without_evaluation_says_what_to_run(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "a.npy", rng.standard_normal((256, 6)).astype(np.float32))
    sae = train_sae(tmp_path / "a.npy", arch="topk", latents=8, k=2, steps=5, batch_size=64, out=tmp_path / "s",
                    device="cpu", progress=False)
    assert cli_main(["report", str(sae)]) == 0
    page = (sae / "report.html").read_text()
    assert "untwine sae evaluate" in page and "--factors" in page


def test_factors_with_other_rows_are_one_line(concept_acts, tmp_path, capsys):
    root, sae = concept_acts
    np.save(tmp_path / "f.npy", np.zeros((299, 3), dtype=np.int64) + np.arange(299)[:, None] % 2)
    capsys.readouterr()
    assert cli_main(["sae", "evaluate", str(sae), str(root / "acts.npy"), "--factors", str(tmp_path / "f.npy"),
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "299" in err[0] and "300" in err[0]


def test_suite_on_every_row_equals_the_whole_split_and_a_subsample_is_reported(concept_acts):
    """Issue 23: below --suite-rows nothing is subsampled and every suite score equals the suite on
    the whole split (as before the option); above it the suite runs on the reported, seeded rows."""
    from untwine.concepts.baselines import suite_sample
    from untwine.concepts.sae_evaluation import evaluate_concepts
    from untwine.metrics.suite import evaluate_arrays

    root, sae = concept_acts
    x = np.load(root / "acts.npy")
    f = np.load(root / "acts" / "factors.npy")
    codes = load_sae(sae, "cpu").encode(torch.from_numpy(x)).double().numpy()
    tr, te = split_rows(len(x), 0)
    kw = {"device": "cpu", "baselines": False}
    full = evaluate_concepts(sae, root / "acts.npy", f, **kw)  # default 6000 rows > 300: every row
    assert not full["settings"]["suite_subsampled"]
    assert (full["settings"]["suite_train_rows"], full["settings"]["suite_test_rows"]) == (len(tr), len(te))
    ref = evaluate_arrays(codes[tr], f[tr], codes[te], f[te], seed=0)
    for k, v in ref.items():
        assert full["sae"][k] == v or (np.isnan(v) and np.isnan(full["sae"][k])), k
    sub = evaluate_concepts(sae, root / "acts.npy", f, suite_rows=60, **kw)
    st = sub["settings"]
    assert st["suite_subsampled"] and (st["suite_train_rows"], st["suite_test_rows"]) == (40, 20)
    a, b = suite_sample(len(tr), len(te), 60, 0)
    ref = evaluate_arrays(codes[tr[a]], f[tr[a]], codes[te[b]], f[te[b]], seed=0)
    for k, v in ref.items():
        assert sub["sae"][k] == v or (np.isnan(v) and np.isnan(sub["sae"][k])), k
    # probing uses every row whatever the suite's sample
    assert sub["sae"]["sparse_probe_k1_mean"] == full["sae"]["sparse_probe_k1_mean"]


def test_evaluate_without_a_terminal_prints_one_line_per_phase_and_names_the_sample(concept_acts, tmp_path):
    """Issue 25: no terminal, so no bar: one plain line per phase (no control characters), and
    the suite's subsample in the printed output and the JSON."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root, sae = concept_acts
    out = tmp_path / "flat.json"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "untwine", "sae", "evaluate", str(sae), str(root / "acts.npy"), "--factors",
                        str(root / "acts" / "factors.npy"), "--device", "cpu", "--suite-rows", "60", "--json", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stderr + p.stdout and "\r" not in p.stderr
    phases = [line for line in p.stderr.splitlines() if line.startswith("sae evaluate: ")]
    names = [line.rsplit(": ", 1)[0] for line in phases]
    for want in ("SAE codes: encoding", "SAE codes: suite and sparse probing", "raw activations: suite and sparse probing",
                 "PCA: suite and sparse probing", "supervised dictionary: edit test"):
        assert sum(n.startswith(f"sae evaluate: {want}") for n in names) == 1, (want, names)
    assert all(line.endswith(" s") for line in phases)
    for line in p.stderr.splitlines():  # every warning names its code set
        if line.startswith("warning: "):
            assert line.split(": ")[1] in ("SAE codes", "raw activations", "PCA", "supervised dictionary",
                                            "supervised projection"), line
    assert "seeded subsample of 40 train + 20 test rows" in p.stdout and "fvu (test rows)" in p.stdout
    flat = json.loads(out.read_text())
    assert (flat["suite_train_rows"], flat["suite_test_rows"]) == (40, 20)
    assert flat["fvu_test_rows"] != flat["fvu"]  # every row vs the test rows, both labelled


def test_warnings_name_their_code_set():
    import warnings

    from untwine.concepts.baselines import code_set
    from untwine.errors import UntwineWarning

    with pytest.warns(UntwineWarning) as rec:
        with code_set("PCA"):
            warnings.warn("x is undefined", UntwineWarning)
            warnings.warn("x is undefined", UntwineWarning)  # the same line once
    assert [str(w.message) for w in rec] == ["PCA: x is undefined"]


def test_sae_train_without_a_terminal_prints_a_line_per_tenth(tmp_path):
    """Issue 25: with 100 steps and a log row every 32, only the last step was printed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "untwine", "sae", "train", str(tmp_path / "a.npy"), "--arch", "topk",
                        "--latents", "16", "--k", "2", "--steps", "100", "--batch-size", "64", "--out", str(tmp_path / "s")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stderr and "\r" not in p.stderr
    steps = [line for line in p.stderr.splitlines() if ": step " in line]
    assert [line.split(": step ")[1].split()[0] for line in steps] == ["32/100", "64/100", "96/100", "100/100"]
    assert any(line.endswith(": training (100 of 100): " + line.rsplit(": ", 1)[1]) for line in p.stderr.splitlines())


def test_latent_edit_encodes_the_rows_once_and_equals_the_formula(concept_acts):
    # x' = x + decode(c') - decode(c), c' = c with S_a set to the target value's mean code
    from untwine.concepts.sae_evaluation import LatentEdit

    root, sae_dir = concept_acts
    sae = load_sae(sae_dir)
    x = np.load(root / "acts.npy").astype(np.float64)
    f = np.load(root / "acts" / "factors.npy")
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(x.astype(np.float32))).double().numpy()
    edit = LatentEdit(sae, codes, f, list(SIZES))
    calls = []
    encode = sae.encode
    sae.encode = lambda t: calls.append(1) or encode(t)
    try:
        with torch.no_grad():
            rows = x[:50]  # edit_test passes the same rows for every factor
            got = [edit(rows, f[:50], a, (f[:50, a] + 1) % s) for a, s in enumerate(SIZES)]
    finally:
        del sae.encode
    assert len(calls) == 1
    with torch.no_grad():
        xt = torch.from_numpy(x[:50].astype(np.float32))
        c = sae.encode(xt)
        for a, s in enumerate(SIZES):
            c2 = c.clone()
            c2[:, torch.as_tensor(edit.latents[a])] = torch.as_tensor(edit.means[a][(f[:50, a] + 1) % s], dtype=c.dtype)
            np.testing.assert_allclose(got[a], (xt + sae.decode(c2) - sae.decode(c)).double().numpy(), atol=1e-6)
