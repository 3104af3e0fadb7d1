"""Study specs: validation with one-line errors, grid expansion, stable readable run ids."""

from pathlib import Path

import pytest
import yaml

from untwine.errors import UntwineError
from untwine.study.spec import expand, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "studies" / "tiny.yaml"


def _spec(**over):
    data = {
        "datasets": ["dsprites"],
        "models": [{"name": "beta_vae", "hparams": {"beta": [1, 4], "learning_rate": "1e-4"}}, "vae"],
        "seeds": 3,
        "train": {"steps": 10, "batch_size": 8},
        "evaluation": {"metrics": ["mig", "sap"], "num_train": 50, "num_test": 20},
    }
    data.update(over)
    return parse_spec(data)


def test_grid_expands_as_cartesian_product_with_stable_readable_ids():
    spec = _spec(models=[{"name": "beta_vae", "hparams": {"beta": [1, 4, 16], "num_latents": [4, 6]}}, "vae"])
    runs = expand(spec)
    assert len(runs) == (3 * 2 + 1) * 3  # grid points x seeds
    assert len({r.run_id for r in runs}) == len(runs)
    combos = {(r.hparams["beta"], r.hparams["num_latents"]) for r in runs if r.model == "beta_vae"}
    assert combos == {(b, n) for b in (1.0, 4.0, 16.0) for n in (4, 6)}
    r = next(r for r in runs if r.model == "beta_vae" and r.hparams == {"beta": 4.0, "num_latents": 6} and r.seed == 2)
    assert r.run_id.startswith("beta_vae-dsprites-beta4_num_latents6-s2-")
    assert len(r.run_id.rsplit("-", 1)[1]) == 8
    # the same configuration's seeds share a config id; ids are stable across loads
    same = [x for x in runs if x.config_id == r.config_id]
    assert sorted(x.seed for x in same) == [0, 1, 2]
    assert [x.run_id for x in expand(spec)] == [x.run_id for x in runs]
    # hyper-parameter values are coerced to the model's types ("1e-4" -> float)
    runs2 = expand(_spec())
    assert all(isinstance(x.hparams.get("learning_rate", 0.0), float) for x in runs2)


def test_run_id_hash_covers_weights_but_not_the_step_budget():
    a = {r.run_id for r in expand(_spec())}
    more_steps = {r.run_id for r in expand(_spec(train={"steps": 99, "batch_size": 8}))}
    other_batch = {r.run_id for r in expand(_spec(train={"steps": 10, "batch_size": 16}))}
    assert a == more_steps  # raising steps continues the same runs
    assert not (a & other_batch)


def test_example_tiny_study_is_two_models_by_two_seeds_on_dsprites():
    spec = load_spec(EXAMPLE)
    runs = expand(spec)
    assert len(runs) == 4
    assert {r.model for r in runs} == {"beta_vae", "beta_tcvae"}
    assert {r.seed for r in runs} == {0, 1}
    assert {r.dataset for r in runs} == {"dsprites"}
    assert len({r.config_id for r in runs}) == 2
    shrunk = load_spec(EXAMPLE, {"train.steps": 2, "seeds": [0]})
    assert shrunk.train["steps"] == 2 and len(expand(shrunk)) == 2


def test_dataset_paths_resolve_relative_to_the_study_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "toy.npz").write_bytes(b"not read at validation time")
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"datasets": ["data/toy.npz"], "models": ["vae"]}))
    runs = expand(load_spec(f))
    assert runs[0].dataset_ref == str((tmp_path / "data" / "toy.npz").resolve())
    assert runs[0].run_id.startswith("vae-toy-default-s0-")
    assert load_spec(f).name == "s"


@pytest.mark.parametrize(
    "over, match",
    [
        ({"models": ["betavae"]}, "unknown model 'betavae'"),
        ({"models": [{"name": "beta_vae", "hparams": {"betta": 2}}]}, "unknown hyper-parameter 'betta'"),
        ({"models": [{"name": "beta_vae", "hparams": {"beta": "big"}}]}, "beta: expected float"),
        ({"models": [{"name": "beta_vae", "hparams": {"beta": []}}]}, "empty list"),
        ({"models": [{"name": "beta_vae", "hparams": {"beta": [1, 1]}}]}, "repeats a value"),
        ({"models": [{"name": "beta_vae", "params": {}}]}, "unknown key 'params'"),
        ({"datasets": ["nosuchdata"]}, "unknown dataset 'nosuchdata'"),
        ({"datasets": []}, "non-empty list"),
        ({"seeds": [0, "1"]}, "seeds"),
        ({"seeds": [1, 1]}, "listed twice"),
        ({"seeds": 0}, "seeds"),
        ({"train": {"steps": -1}}, "train.steps"),
        ({"train": {"steps": 1.5}}, "train.steps"),
        ({"train": {"epochs": 3}}, "unknown key 'epochs'"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"evaluation": {"metrics": ["mig", "nope"]}}, "unknown metric 'nope'"),
        ({"evaluation": {"num_train": 1}}, "num_train"),
        ({"udr": {"correlation": "pearson"}}, "udr.correlation"),
        ({"retries": -1}, "retries"),
        ({"name": "a b"}, "study name"),
        ({"wat": 1}, "unknown key 'wat'"),
    ],
)
def test_bad_specs_are_one_line_errors(over, match):
    with pytest.raises(UntwineError, match=match) as info:
        expand(_spec(**over))
    assert "\n" not in str(info.value)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(UntwineError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [vae\n  datasets: :")
    with pytest.raises(UntwineError, match="not valid YAML"):
        load_spec(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UntwineError, match="mapping"):
        load_spec(lst)
    nomodel = tmp_path / "nomodel.yaml"
    nomodel.write_text("datasets: [dsprites]\n")
    with pytest.raises(UntwineError, match="no models"):
        load_spec(nomodel)
