"""Run config resolution: defaults, YAML file, explicit options, --set overrides, errors."""

import pytest
import yaml

from untwine.errors import UntwineError
from untwine.train.api import resolve_config
from untwine.train.config import RunConfig, diff_identity, parse_overrides, parse_scalar


def test_scalars_parse_as_yaml():
    assert parse_scalar("4") == 4 and isinstance(parse_scalar("4"), int)
    assert parse_scalar("1e-4") == pytest.approx(1e-4)
    assert parse_scalar("0.5") == 0.5
    assert parse_scalar("true") is True
    assert parse_scalar("null") is None
    assert parse_scalar("bernoulli") == "bernoulli"
    assert parse_overrides(["beta=4", "steps = 100", "hparams.learning_rate=1e-3"]) == {
        "beta": 4,
        "steps": 100,
        "hparams.learning_rate": 1e-3,
    }
    with pytest.raises(UntwineError, match="key=value"):
        parse_overrides(["beta"])


def test_defaults_and_precedence(tmp_path):
    cfg = resolve_config("beta_vae", "dsprites")
    assert (cfg.steps, cfg.batch_size, cfg.seed, cfg.device) == (5000, 64, 0, "auto")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": "beta_vae", "dataset": "dsprites", "steps": 300, "seed": 3, "hparams": {"beta": 8}}))
    cfg = resolve_config(config=path)
    assert (cfg.model, cfg.steps, cfg.seed, cfg.hparams) == ("beta_vae", 300, 3, {"beta": 8})
    # explicit options beat the file, --set beats both; bare and dotted hyper-parameter names
    cfg = resolve_config(config=path, steps=200, overrides=["seed=5", "beta=16", "hparams.learning_rate=1e-3"])
    assert (cfg.steps, cfg.seed) == (200, 5)
    assert cfg.hparams == {"beta": 16, "learning_rate": 1e-3}


def test_unknown_keys_are_one_line_errors(tmp_path):
    with pytest.raises(UntwineError, match="unknown key 'stepz'") as exc:
        resolve_config("beta_vae", "dsprites", overrides=["stepz=3"])
    assert "\n" not in str(exc.value) and "steps" in str(exc.value) and "beta" in str(exc.value)
    with pytest.raises(UntwineError, match="has no hyper-parameter 'gamma'"):
        resolve_config("beta_vae", "dsprites", overrides=["hparams.gamma=3"])
    path = tmp_path / "bad.yaml"
    path.write_text("model: vae\ndataset: dsprites\nlearning_rat: 0.1\n")
    with pytest.raises(UntwineError, match="unknown key 'learning_rat'"):
        resolve_config(config=path)
    path.write_text("model: [unclosed\n")
    with pytest.raises(UntwineError, match="not valid YAML"):
        resolve_config(config=path)
    with pytest.raises(UntwineError, match="config file not found"):
        resolve_config(config=tmp_path / "missing.yaml")


def test_bad_values_and_unknown_model():
    with pytest.raises(UntwineError, match="unknown model 'bvae'.*beta_vae"):
        resolve_config("bvae", "dsprites")
    with pytest.raises(UntwineError, match="steps must be an integer"):
        resolve_config("vae", "dsprites", overrides=["steps=1.5"])
    with pytest.raises(UntwineError, match="batch_size must be at least 1"):
        resolve_config("vae", "dsprites", batch_size=0)
    with pytest.raises(UntwineError, match="device must be one of"):
        resolve_config("vae", "dsprites", overrides=["device=tpu"])
    with pytest.raises(UntwineError, match="no dataset given"):
        resolve_config("vae")


def test_identity_ignores_mutable_fields():
    a = RunConfig(model="vae", dataset="d", steps=10, device="cpu", hparams={"beta": 1})
    b = RunConfig(model="vae", dataset="d", steps=20, device="auto", checkpoint_every=5, hparams={"beta": 1})
    assert a.identity_hash() == b.identity_hash() and diff_identity(a, b) == []
    c = RunConfig(model="vae", dataset="d", seed=1, hparams={"beta": 2})
    assert a.identity_hash() != c.identity_hash()
    assert diff_identity(a, c) == ["hparams.beta (1 vs 2)", "seed (0 vs 1)"]
    assert RunConfig.from_dict(a.to_dict()) == a
