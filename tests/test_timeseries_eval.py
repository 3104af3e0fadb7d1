"""Tests of the time-series evaluation: downstream probes and the series traversal plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untwine.errors import UntwineError
from untwine.metrics.probes import probe_baselines, probe_scores
from untwine.models.dts import DTS
from untwine.viz.series import plot_series_traversal, series_traversal


def _separable(rng, n):
    y = rng.integers(0, 3, size=n)
    centres = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    return centres[y] + 0.3 * rng.standard_normal((n, 2)), y


def test_probes_separable_and_chance():
    rng = np.random.default_rng(0)
    xa, ya = _separable(rng, 150)
    xb, yb = _separable(rng, 90)
    s = probe_scores(xa, ya, xb, yb)
    assert s == {"linear_probe_accuracy": 1.0, "knn_accuracy": 1.0}
    # labels independent of the codes: near chance (1/3)
    s = probe_scores(xa, rng.integers(0, 3, 150), xb, rng.integers(0, 3, 90))
    assert s["linear_probe_accuracy"] < 0.6 and s["knn_accuracy"] < 0.6
    # string labels work
    names = np.array(["a", "b", "c"])
    assert probe_scores(xa, names[ya], xb, names[yb])["knn_accuracy"] == 1.0


def test_probe_baselines_pca():
    rng = np.random.default_rng(1)
    n, t = 60, 40
    y = np.arange(n) % 2
    # class signal in one direction, large class-free noise in many others
    x = rng.standard_normal((n, 1, t)) * 0.05
    x[:, 0, :10] += (2 * y[:, None] - 1) * 1.0
    b = probe_baselines(x[:40], y[:40], x[40:], y[40:], num_components=2)
    assert b["raw"]["linear_probe_accuracy"] == 1.0 and b["pca"]["linear_probe_accuracy"] == 1.0
    with pytest.raises(UntwineError, match="num_components"):
        probe_baselines(x[:40], y[:40], x[40:], y[40:], num_components=100)


def test_probe_errors():
    a = np.zeros((4, 2))
    with pytest.raises(UntwineError, match="labels"):
        probe_scores(a, [0, 1, 0], a, [0, 1, 0, 1])
    with pytest.raises(UntwineError, match="single class"):
        probe_scores(a, [0, 0, 0, 0], a, [0, 1, 0, 1])
    with pytest.raises(UntwineError, match="columns"):
        probe_scores(a, [0, 1, 0, 1], np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(UntwineError, match="non-finite"):
        probe_scores(np.full((4, 2), np.nan), [0, 1, 0, 1], a, [0, 1, 0, 1])


def test_series_traversal_sweeps_one_latent(tmp_path):
    torch.manual_seed(0)
    model = DTS((1, 24), num_latents=3)
    x = torch.rand(1, 24)
    tr = series_traversal(model, x, steps=5)
    assert tr["curves"].shape == (3, 5, 1, 24)
    np.testing.assert_allclose(tr["values"], np.linspace(-2, 2, 5))
    # decoding the swept codes by hand gives the same curves
    with torch.no_grad():
        z = model.encode(x[None]).repeat(5, 1)
        z[:, 1] = torch.linspace(-2, 2, 5)
        want = model.decode(z).numpy()
    np.testing.assert_allclose(tr["curves"][1], want, atol=1e-6)
    fig = plot_series_traversal(model, x, latents=[0, 2], steps=4, path=tmp_path / "trav.png")
    assert (tmp_path / "trav.png").stat().st_size > 1000
    assert len([ax for ax in fig.axes if ax.lines]) == 2
    with pytest.raises(UntwineError, match="latents"):
        series_traversal(model, x, latents=[5])


def test_cli_train_and_evaluate_dts_on_sines(tmp_path):
    """`untwine train dts --dataset sines` and `untwine evaluate` work through the registries."""
    import json

    from untwine.cli import main
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path / "run"
    try:
        assert main(["train", "dts", "--dataset", "sines", "--steps", "20", "--out", str(run), "--device", "cpu",
                     "--no-progress", "--set", "groups=5,5"]) == 0
        assert main(["evaluate", str(run), "--metrics", "mig,dci,beta_vae", "--num-train", "300", "--num-test", "200",
                     "--interventional-train", "100", "--interventional-eval", "50", "--interventional-batch", "8",
                     "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(threads)
    scores = json.loads((run / "metrics.json").read_text())
    for key in ("mig", "dci_disentanglement", "beta_vae_score"):
        assert 0.0 <= scores[key] <= 1.0, key
    # the command wrote what the library computes with the same settings
    from untwine.train import evaluate_run

    torch.set_num_threads(1)
    try:
        again = evaluate_run(run, metrics="mig,dci,beta_vae", num_train=300, num_test=200, interventional_train=100,
                             interventional_eval=50, interventional_batch=8, device="cpu", write=False)
    finally:
        torch.set_num_threads(threads)
    for key in ("mig", "dci_disentanglement", "beta_vae_score"):
        assert scores[key] == pytest.approx(again[key], abs=1e-9), key
