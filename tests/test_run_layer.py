"""The run layer: one metric table, one evaluation config, one encoder, one meaning of observations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from untwine.cli import build_parser, main
from untwine.errors import UntwineError
from untwine.metrics import registry


# -- the metric table ------------------------------------------------------------------------------
def _toy_metric(codes, factors):
    """Mean absolute code: a known answer for any array."""
    return {"toy_abs_mean": float(np.abs(codes).mean()), "toy_rows": float(codes.shape[0])}


@pytest.fixture
def toy_metric():
    registry.register(registry.Metric("toy", _toy_metric, ("toy_abs_mean", "toy_rows"), "train"))
    yield
    registry.unregister("toy")


def _subparser_help(name: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name].format_help()


def test_a_registered_metric_reaches_score_json_help_and_suite(toy_metric, tmp_path, capsys):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(90, 3))
    factors = rng.integers(0, 3, size=(90, 2))
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", factors)
    out = tmp_path / "s.json"
    assert main(["score", str(tmp_path / "c.npy"), str(tmp_path / "f.npy"), "--metrics", "toy,mig", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "toy_abs_mean" in printed
    data = json.loads(out.read_text())
    assert list(data) == ["mig", "toy_abs_mean", "toy_rows"]  # table order: toy registered last
    # the suite fits on the 2:1 train split: 60 of the 90 rows
    assert data["toy_rows"] == 60
    from untwine.metrics.suite import split_train_test

    tr_c = split_train_test(codes, factors, 0)[0]
    assert data["toy_abs_mean"] == pytest.approx(np.abs(tr_c).mean(), rel=1e-12)
    # the help texts and the suite's views list it; `all` includes it
    assert "toy" in _subparser_help("score") and "toy" in _subparser_help("evaluate")
    from untwine.metrics import suite

    assert "toy" in suite.ARRAY_METRICS and suite.SCORE_KEYS[-2:] == ("toy_abs_mean", "toy_rows")
    assert "toy" in registry.parse("all")


def test_unregistered_metric_is_an_unknown_name(tmp_path, capsys):
    assert "toy" not in registry.METRICS
    with pytest.raises(UntwineError, match="unknown metric 'toy'"):
        registry.parse("toy")
    assert main(["score", "--demo", "--metrics", "toy"]) == 2
    assert "unknown metric 'toy'" in capsys.readouterr().err


def test_registry_kinds_and_splits():
    assert registry.names(("interventional",)) == ["beta_vae", "factor_vae"]
    assert registry.parse("betavae,reconstruction", registry.KINDS) == ["beta_vae", "reconstruction"]
    assert registry.test_keys() == {"sap", "dci_informativeness_test", "explicitness_test"}
    assert "reconstruction" in registry.lower_is_better() and "mig" not in registry.lower_is_better()
    with pytest.raises(UntwineError, match="registered already"):
        registry.register(registry.Metric("mig", _toy_metric, ("x",), "train"))


def test_score_files_is_the_library_behind_the_command(tmp_path):
    import untwine

    res = untwine.score_files(demo=True, metrics="mig,sap", json_out=tmp_path / "s.json")
    assert res.metrics == ["mig", "sap"] and res.train_rows == 1000 and res.test_rows == 500
    assert json.loads((tmp_path / "s.json").read_text()) == pytest.approx(res.scores)
    with pytest.raises(UntwineError, match="--seed must be a non-negative integer"):
        untwine.score_files(demo=True, seed=-1)


# -- the evaluation config ---------------------------------------------------------------------------
def test_evaluation_config_one_set_of_defaults():
    from untwine.commands.evaluate import add_parser
    from untwine.study.spec import parse_spec
    from untwine.train.config import EVALUATION_FIELDS, EvaluationConfig

    d = EvaluationConfig()
    parser = build_parser()
    args = parser.parse_args(["evaluate", "RUN"])
    assert {k: getattr(args, k) for k in EVALUATION_FIELDS} == d.to_dict()
    spec = parse_spec({"datasets": ["dsprites"], "models": ["vae"], "seeds": 1})
    assert spec.evaluation == {k: v for k, v in d.to_dict().items() if k != "device"}
    assert add_parser is not None
    with pytest.raises(UntwineError, match="num-train must be an integer >= 2"):
        EvaluationConfig(num_train=1).validate()
    with pytest.raises(UntwineError, match=r"study evaluation\.num_train must be an integer >= 2"):
        EvaluationConfig(num_train=1).validate(where="study evaluation")
    with pytest.raises(UntwineError, match="unknown key 'nope'"):
        EvaluationConfig.from_dict({"nope": 1})


# -- runs: the encoder, the random state, the dataset check ---------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from untwine.train import train

    out = tmp_path_factory.mktemp("layer") / "run"
    train("beta_vae", "dsprites", steps=2, out=out, batch_size=8, seed=0, num_latents=4)
    return out


def test_train_restores_the_callers_random_state(tmp_path):
    from untwine.train import train

    torch.manual_seed(123)
    np.random.seed(456)
    expect_t, expect_n = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(456)
    train("vae", "dsprites", steps=1, out=tmp_path / "r", batch_size=4, seed=7, num_latents=2)
    assert torch.equal(torch.rand(3), expect_t) and np.array_equal(np.random.rand(3), expect_n)


def test_run_encoder_is_the_models_encoding(tiny_run):
    from untwine.data import load
    from untwine.train import open_run

    run = open_run(tiny_run)
    ds = run.dataset()
    f = ds.sample_factors(30, np.random.default_rng(0))
    enc = run.encoder("mean", batch_size=7)
    got = enc.encode_factors(ds, f, posterior=True, reconstruct=True)
    model = run.load_model()
    with torch.no_grad():
        mean, logvar = model.encode_dist(ds.observations(f))
    assert np.allclose(got.codes, mean.double().numpy(), atol=1e-6) and np.allclose(got.logvar, logvar.double().numpy(), atol=1e-6)
    kl = 0.5 * (got.mean**2 + np.exp(got.logvar) - got.logvar - 1).mean(0)
    assert np.allclose(got.latent_kl(), kl)
    assert got.reconstruction["reconstruction"] > 0
    sampled = run.encoder("sampled", seed=3, batch_size=7).encode_factors(ds, f).codes
    again = run.encoder("sampled", seed=3, batch_size=7).encode_factors(ds, f).codes
    assert not np.allclose(sampled, got.codes) and np.allclose(sampled, again, atol=1e-6)
    # indices and factors name the same observations on a full grid
    idx = ds.index_of(f)
    assert np.allclose(enc.encode_indices(ds, idx).codes, got.codes)
    with pytest.raises(UntwineError, match="observations of shape"):
        run.dataset(load("shapes3d"))
    with pytest.raises(UntwineError, match="must be one of mean, sampled"):
        run.encoder("median")


def test_observations_mean_the_same_on_grids_and_rows(tmp_path):
    from untwine.data import load

    grid = load("dsprites")
    rng = np.random.default_rng(0)
    idx = grid.sample_indices(5, rng)
    assert torch.equal(grid.observations_at(idx), grid.observations(grid.factors_of(idx)))
    # not a full grid: combination (1, 0) is stored in rows 1 and 2 with different images
    imgs = np.zeros((4, 8, 8), dtype=np.uint8)
    for i in range(4):
        imgs[i, i, :] = 1
    factors = np.array([[0, 0], [1, 0], [1, 0], [0, 1]])
    np.savez(tmp_path / "rows.npz", images=imgs, factors=factors)
    ds = load(str(tmp_path / "rows.npz"))
    # observations(factors): the first row holding the combination
    assert torch.equal(ds.observations(np.array([[1, 0]]))[0, 0], torch.from_numpy(imgs[1]).float())
    # drawing by index reaches every stored row, each with its own factors
    rows = ds.sample_indices(200, np.random.default_rng(1))
    assert set(rows.tolist()) == {0, 1, 2, 3}
    assert torch.equal(ds.observations_at(rows)[:, 0], torch.from_numpy(imgs[rows]).float())
    assert np.array_equal(ds.factors_of(rows), factors[rows])


def test_series_files_load_through_data_load(tmp_path, capsys):
    from untwine.data import load
    from untwine.data.series import SeriesSplit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 20))
    y = np.array([0, 1, 2] * 4)
    np.savez(tmp_path / "waves.npz", X_train=x[:9], y_train=y[:9], X_test=x[9:], y_test=y[9:])
    tr = load(str(tmp_path / "waves.npz"))
    te = load(str(tmp_path / "waves.npz"), split="test")
    assert isinstance(tr, SeriesSplit) and tr.num_samples == 9 and te.num_samples == 3
    assert tr.factor_names == ("label",) and tr.factor_sizes == (3,) and tr.observation_shape == (1, 20)
    rows = tr.sample_indices(50, np.random.default_rng(0))
    assert np.array_equal(tr.factors_of(rows)[:, 0], y[:9][rows])
    # the series of class 1 that observations() returns is the first one stored
    assert torch.equal(tr.observations(np.array([[1]])), tr.observations_at([1]))
    assert main(["datasets"]) == 0
    assert "sines" in capsys.readouterr().out
