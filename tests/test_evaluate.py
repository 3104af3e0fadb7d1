"""`untwine evaluate` / evaluate_run: metrics.json keys, determinism, representations, errors."""

import json

import numpy as np
import pytest
import torch

from untwine.train import evaluate_run, load, load_config, open_run, train
from untwine.cli import main
from untwine.errors import UntwineError
from untwine.metrics.suite import SCORE_KEYS
from untwine.train.evaluate import parse_evaluation_metrics

SMALL = dict(num_train=200, num_test=100, interventional_train=20, interventional_eval=10, interventional_batch=8)


def _toy_grid():
    """Every combination of (x 4, y 4, size 2) as 16x16 binary squares."""
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    return imgs, f


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    imgs, f = _toy_grid()
    np.savez(root / "toy.npz", images=imgs, factors=f)
    train("beta_vae", str(root / "toy.npz"), steps=30, out=root / "run", batch_size=16, seed=0, set={"learning_rate": 1e-3})
    yield root / "run"
    torch.set_num_threads(n)


def test_metrics_json_has_every_key(run_dir):
    scores = evaluate_run(run_dir, seed=1, **SMALL)
    expected = list(SCORE_KEYS) + [
        "beta_vae_score",
        "beta_vae_train_accuracy",
        "factor_vae_score",
        "factor_vae_train_accuracy",
        "factor_vae_num_active_dims",
        "reconstruction",
        "reconstruction_mse",
    ]
    assert list(scores) == expected
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert set(on_disk) == set(expected)
    for k in ("mig", "dci_disentanglement", "beta_vae_score", "factor_vae_score", "infom", "reconstruction_mse"):
        assert 0.0 <= scores[k] <= 1.0, k
    # reconstruction is a per-image summed Bernoulli cross-entropy: positive, at most 256 * ln(1e7)
    assert 0 < scores["reconstruction"] < 256 * np.log(1e7)
    settings = json.loads((run_dir / "evaluation.json").read_text())
    assert settings["num_train"] == 200 and settings["step"] == 30 and settings["representation"] == "mean"
    # same seed, same numbers; the interventional scores see the same encoder
    again = evaluate_run(run_dir, seed=1, write=False, **SMALL)
    assert again == scores


def test_reconstruction_matches_a_direct_computation(run_dir):
    from untwine.data import load as load_dataset

    scores = evaluate_run(run_dir, metrics="reconstruction", seed=3, write=False, num_train=10, num_test=64)
    assert set(scores) == {"reconstruction", "reconstruction_mse"}
    ds = load_dataset(open_run(run_dir).config.dataset)
    rng = np.random.default_rng(3)
    ds.sample_factors(10, rng)  # the train sample is drawn first
    x = ds.observations(ds.sample_factors(64, rng)).double()
    model = load(run_dir).double()
    with torch.no_grad():
        p = model.decode(model.encode(x)).clamp(1e-7, 1 - 1e-7)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3)).mean()
    assert scores["reconstruction"] == pytest.approx(float(bce), rel=1e-5)
    assert scores["reconstruction_mse"] == pytest.approx(float(((p - x) ** 2).mean()), rel=1e-4)


def test_sampled_representation_differs_from_mean(run_dir):
    mean = evaluate_run(run_dir, metrics="mig,reconstruction", write=False, num_train=200, num_test=100)
    sampled = evaluate_run(run_dir, metrics="mig,reconstruction", representation="sampled", write=False, num_train=200, num_test=100)
    assert set(mean) == set(sampled) == {"mig", "reconstruction", "reconstruction_mse"}
    assert sampled["reconstruction"] != mean["reconstruction"]


def test_metric_selection_and_errors(run_dir, tmp_path):
    assert parse_evaluation_metrics("mig,beta_vae") == (["mig"], ["beta_vae"])
    assert parse_evaluation_metrics("all")[1] == ["beta_vae", "factor_vae", "reconstruction"]
    with pytest.raises(UntwineError, match="unknown metric 'migg'"):
        parse_evaluation_metrics("migg")
    with pytest.raises(UntwineError, match="num-train must be an integer >= 2"):
        evaluate_run(run_dir, num_train=1)
    with pytest.raises(UntwineError, match="representation must be one of mean, sampled"):
        evaluate_run(run_dir, representation="median")
    with pytest.raises(UntwineError, match="not an untwine run directory"):
        evaluate_run(tmp_path)


def test_cli_evaluate(run_dir, tmp_path, capsys):
    rc = main(["evaluate", str(run_dir), "--metrics", "mig,dci,factor_vae", "--num-train", "200", "--num-test", "100",
               "--interventional-train", "20", "--interventional-eval", "10", "--interventional-batch", "8"])
    out = capsys.readouterr().out
    assert rc == 0 and "mig" in out and "factor_vae_score" in out and "metrics.json" in out
    assert set(json.loads((run_dir / "metrics.json").read_text())) >= {"mig", "dci_disentanglement", "factor_vae_score"}
    rc = main(["evaluate", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "not an untwine run" in err


def test_all_on_a_non_grid_dataset_skips_the_interventional_scores(run_dir, tmp_path):
    from untwine.data import load as load_dataset

    imgs, f = _toy_grid()
    np.savez(tmp_path / "partial.npz", images=imgs[:-3], factors=f[:-3])  # three combinations missing
    ds = load_dataset(str(tmp_path / "partial.npz"))
    assert not ds.is_full_grid
    scores = evaluate_run(run_dir, dataset=ds, write=False, num_train=200, num_test=100)
    assert "mig" in scores and "reconstruction" in scores
    assert not any(k.startswith(("beta_vae", "factor_vae")) for k in scores)
    with pytest.raises(UntwineError, match="needs a full factor grid"):
        evaluate_run(run_dir, dataset=ds, metrics="beta_vae", write=False, num_train=200, num_test=100)
