"""`untwine evaluate` / evaluate_run: metrics.json keys, determinism, representations, errors,
active/passive latents and the mean vs sampled vs active-only comparison."""

import json

import numpy as np
import pytest
import torch

from untwine.train import evaluate_run, load, open_run, train
from untwine.cli import main
from untwine.errors import UntwineError
from untwine.metrics.suite import SCORE_KEYS
from untwine.train.evaluate import parse_evaluation_metrics
from untwine.train.run import Run

ACTIVITY_KEYS = {"num_active_latents", "num_passive_latents"}

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
        "num_active_latents",
        "num_passive_latents",
    ]
    assert list(scores) == expected
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert {k for k in on_disk if not k.startswith("_")} == set(expected)
    assert on_disk["_test_split"] == "held-out rows"  # a file: test rows set aside, never train rows
    for k in ("mig", "dci_disentanglement", "beta_vae_score", "factor_vae_score", "infom", "reconstruction_mse"):
        assert 0.0 <= scores[k] <= 1.0, k
    # known answer: the array metrics of the run's mean codes of the samples drawn with the seed (train first)
    from untwine.metrics.suite import evaluate_arrays

    run = open_run(run_dir)
    ds = run.dataset()
    rows = ds.evaluation_rows(200, 100, np.random.default_rng(1))  # train rows, then held-out test rows
    i_tr, i_te, te = rows.train, rows.test, rows.test_dataset
    enc = run.encoder("mean", seed=1)
    expected = evaluate_arrays(enc.encode_indices(ds, i_tr).codes, ds.factors_of(i_tr),
                               enc.encode_indices(te, i_te).codes, te.factors_of(i_te), metrics=["mig", "dci"], seed=1)
    for k in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test"):
        assert scores[k] == pytest.approx(expected[k], abs=1e-9), k
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
    assert set(scores) == {"reconstruction", "reconstruction_mse"} | ACTIVITY_KEYS
    ds = load_dataset(open_run(run_dir).config.dataset)
    rows = ds.evaluation_rows(10, 64, np.random.default_rng(3))  # the test rows, set aside from the train rows
    x = rows.test_dataset.observations_at(rows.test).double()
    model = load(run_dir).double()
    with torch.no_grad():
        p = model.decode(model.encode(x)).clamp(1e-7, 1 - 1e-7)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum((1, 2, 3)).mean()
    assert scores["reconstruction"] == pytest.approx(float(bce), rel=1e-5)
    assert scores["reconstruction_mse"] == pytest.approx(float(((p - x) ** 2).mean()), rel=1e-4)


def test_sampled_representation_differs_from_mean(run_dir):
    mean = evaluate_run(run_dir, metrics="mig,reconstruction", write=False, num_train=200, num_test=100)
    sampled = evaluate_run(run_dir, metrics="mig,reconstruction", representation="sampled", write=False, num_train=200, num_test=100)
    assert set(mean) == set(sampled) == {"mig", "reconstruction", "reconstruction_mse"} | ACTIVITY_KEYS
    assert sampled["reconstruction"] != mean["reconstruction"]


def test_metric_selection_and_errors(run_dir, tmp_path):
    assert parse_evaluation_metrics("mig,beta_vae") == (["mig"], ["beta_vae"])
    assert parse_evaluation_metrics("all")[1] == ["beta_vae", "factor_vae", "reconstruction", "accuracy"]
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


# -- active / passive latents ("Be More Active!") ------------------------------------------

COMPARE = dict(metrics="mig,unsupervised", write=True, num_train=200, num_test=100, compare_representations=True)


def _patch_encoder(monkeypatch, transform):
    """Every model loaded from a run gets ``encode_dist = transform(original encode_dist output)``."""
    real = Run.load_model

    def load_model(self, device="cpu"):
        model = real(self, device)
        orig = model.encode_dist
        model.encode_dist = lambda x: transform(*orig(x))
        return model

    monkeypatch.setattr(Run, "load_model", load_model)


def test_activity_and_comparison_keys(run_dir):
    scores = evaluate_run(run_dir, seed=2, **COMPARE)
    d = load(run_dir).num_latents
    assert scores["num_active_latents"] + scores["num_passive_latents"] == d
    unsup = ["gaussian_total_correlation", "gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm",
             "mutual_info_score"]
    for rep in ("mean", "sampled", "mean_active"):
        for k in ["mig"] + unsup:
            assert f"{rep}.{k}" in scores, (rep, k)
    # the mean representation of the comparison is the main (mean) representation: same numbers
    for k in ["mig"] + unsup:
        assert scores[f"mean.{k}"] == scores[k]
    assert scores["sampled.mig"] != scores["mean.mig"]
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    # undefined scores (NaN: no active latent) are null on disk and listed under "_undefined"
    assert {k for k in on_disk if not k.startswith("_")} == set(scores)
    assert on_disk.get("_undefined", []) == [k for k, v in scores.items() if v != v]
    act = json.loads((run_dir / "evaluation.json").read_text())["activity"]
    assert act["criterion"] == "kl" and act["threshold"] == 0.01 and act["num_latents"] == d
    assert len(act["latents"]) == d
    assert sorted(act["active_latents"] + act["passive_latents"]) == list(range(d))
    for row in act["latents"]:
        assert row["active"] == (row["kl"] >= 0.01) == (row["index"] in act["active_latents"])
        assert row["kl"] >= 0 and row["mean_variance"] >= 0 and row["posterior_variance"] > 0
    assert act["total_kl"] == pytest.approx(sum(r["kl"] for r in act["latents"]))
    # a huge threshold makes every latent passive: the active-only scores are then undefined (NaN)
    none = evaluate_run(run_dir, seed=2, kl_threshold=1e9, **{**COMPARE, "write": False})
    assert none["num_active_latents"] == 0 and none["num_passive_latents"] == d
    assert np.isnan(none["mean_active.mig"]) and none["mean.mig"] == scores["mean.mig"]


PASSIVE = [1, 3, 7]


def _forced_passive(mean, logvar):
    """Latents 1, 3, 7 collapsed to the prior (logvar 0, means ~1e-3 that move together); the rest
    sharply active (logvar -4, KL >= 1.5 nats)."""
    t = torch.tanh(mean)
    m = mean.clone()
    lv = torch.full_like(mean, -4.0)
    m[:, 1] = 1e-3 * t[:, 0]
    m[:, 3] = 1e-3 * (t[:, 0] + 0.3 * t[:, 2])
    m[:, 7] = 1e-3 * (t[:, 0] - 0.3 * t[:, 4])
    lv[:, PASSIVE] = 0.0
    return m, lv


def test_forced_passive_latents_are_reported_exactly(run_dir, tmp_path, monkeypatch):
    _patch_encoder(monkeypatch, _forced_passive)
    scores = evaluate_run(run_dir, seed=0, **COMPARE)
    d = load(run_dir).num_latents
    assert scores["num_passive_latents"] == len(PASSIVE) and scores["num_active_latents"] == d - len(PASSIVE)
    act = json.loads((run_dir / "evaluation.json").read_text())["activity"]
    assert act["passive_latents"] == PASSIVE
    assert act["active_latents"] == [j for j in range(d) if j not in PASSIVE]
    for row in act["latents"]:
        if row["index"] in PASSIVE:
            assert row["kl"] < 1e-5 and row["posterior_variance"] == 1.0 and row["collapsed_fraction"] == 1.0
        else:
            assert row["kl"] > 1.5 and row["collapsed_fraction"] == 0.0
    # the paper's effect: the passive latents' correlated means inflate the mean representation's total
    # correlation; sampling them (prior noise) or removing them takes that away
    tc = {rep: scores[f"{rep}.gaussian_total_correlation"] for rep in ("mean", "sampled", "mean_active")}
    assert tc["mean"] > tc["mean_active"] + 1.0 and tc["mean"] > tc["sampled"] + 1.0
    # the active-only scores are the suite on the active columns of the mean codes
    from untwine.data import load as load_dataset
    from untwine.metrics.suite import evaluate_arrays
    run = open_run(run_dir)
    ds = load_dataset(run.config.dataset)
    rows = ds.evaluation_rows(200, 100, np.random.default_rng(0))
    f_tr, f_te = ds.factors_of(rows.train), rows.test_dataset.factors_of(rows.test)
    enc = run.encoder("mean")
    keep = act["active_latents"]
    c_tr = enc.encode_indices(ds, rows.train).codes[:, keep]
    c_te = enc.encode_indices(rows.test_dataset, rows.test).codes[:, keep]
    direct = evaluate_arrays(c_tr, f_tr, c_te, f_te, metrics="mig,unsupervised", seed=0)
    for k, v in direct.items():
        assert scores[f"mean_active.{k}"] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_deterministic_encoder_uses_the_std_rule_and_sampled_equals_mean(run_dir, monkeypatch):
    def deterministic(mean, logvar):
        m = mean.clone()
        m[:, 2] = 0.5  # constant code
        m[:, 5] = 0.5 + 1e-4 * torch.tanh(mean[:, 0])  # moves, but far less than 5% of the largest std
        return m, None

    _patch_encoder(monkeypatch, deterministic)
    scores = evaluate_run(run_dir, seed=0, representation="sampled", **COMPARE)
    settings = json.loads((run_dir / "evaluation.json").read_text())
    act = settings["activity"]
    assert act["criterion"] == "std_ratio" and act["deterministic"] and act["passive_latents"] == [2, 5]
    assert all(row["kl"] is None for row in act["latents"])
    assert scores["num_passive_latents"] == 2
    assert settings["comparison"]["deterministic_encoder"] and "equals the mean" in settings["comparison"]["note"]
    for k in ("mig", "gaussian_total_correlation"):
        assert scores[f"sampled.{k}"] == scores[f"mean.{k}"] == scores[k]
    assert scores["mean_active.gaussian_total_correlation"] != scores["mean.gaussian_total_correlation"]


def test_cli_prints_activity_and_comparison(run_dir, monkeypatch, capsys):
    _patch_encoder(monkeypatch, _forced_passive)
    small = ["--num-train", "200", "--num-test", "100"]
    rc = main(["evaluate", str(run_dir), "--metrics", "mig", "--compare-representations", *small])
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 passive" in out and "passive" in out and "KL (nats)" in out
    assert "mean, active only" in out and "gaussian_total_correlation" in out and "modularity" in out
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["num_passive_latents"] == 3
    assert {"sampled.gaussian_total_correlation", "mean_active.gaussian_total_correlation", "mean.modularity"} <= set(on_disk)
    rc = main(["evaluate", str(run_dir), "--metrics", "mig", "--no-compare-representations", *small])
    out = capsys.readouterr().out
    assert rc == 0 and "mean, active only" not in out and "3 passive" in out
    assert not any("." in k for k in json.loads((run_dir / "metrics.json").read_text()))
    rc = main(["evaluate", str(run_dir), "--compare-metrics", "beta_vae", *small])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and "beta_vae" in err


def test_comparison_argument_errors(run_dir):
    with pytest.raises(UntwineError, match="kl-threshold must be a number >= 0"):
        evaluate_run(run_dir, kl_threshold=-1.0, write=False)
    with pytest.raises(UntwineError, match="unknown metric 'factor_vae'"):
        evaluate_run(run_dir, compare_representations=True, compare_metrics="factor_vae", write=False)
