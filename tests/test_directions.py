"""untwine.directions: SeFa's closed form, the oracle on a perfect generator, scoring, the learnt
methods' losses, find_directions / `untwine directions` files and one-line errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from untwine.cli import main
from untwine.directions import (
    METHODS,
    Generator,
    get_method,
    get_oracle,
    score_effects,
    train_oracle,
)
from untwine.directions.oracle import load_oracle, oracle_path
from untwine.directions.run import find_directions, score_directions
from untwine.directions.sefa import factorize_weight
from untwine.errors import UntwineError
from untwine.models import build_model
from untwine.train import train


def _toy_grid():
    """Every combination of (x 4, y 4, size 2) as 16x16 binary squares."""
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    return imgs, f


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other jobs: one thread is faster here
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from untwine.data import load

    root = tmp_path_factory.mktemp("dirs")
    imgs, f = _toy_grid()
    np.savez(root / "toy.npz", images=imgs, factors=f)
    return root, load(str(root / "toy.npz"))


@pytest.fixture(scope="module")
def oracle(toy):
    return get_oracle(toy[1], steps=300)


@pytest.fixture(scope="module")
def run_dir(toy):
    root, _ = toy
    train("vae", str(root / "toy.npz"), steps=30, out=root / "run", batch_size=16, seed=0,
          set={"learning_rate": 1e-3, "num_latents": 4})
    return root / "run"


class PerfectGenerator(nn.Module):
    """The renderer driven by factor coordinates: latent k in [-2, 2] sets factor k's index."""

    gaussian = True

    def __init__(self, dataset) -> None:
        super().__init__()
        self.dataset = dataset
        self.num_latents = dataset.num_factors
        self.hparams = {"observation_shape": list(dataset.observation_shape)}
        self.sizes = np.asarray(dataset.factor_sizes)

    def decode(self, z):
        z = np.asarray(z.detach().cpu(), dtype=np.float64)
        idx = np.clip(np.round((z + 2) / 4 * (self.sizes - 1)), 0, self.sizes - 1).astype(np.int64)
        return torch.as_tensor(self.dataset.observations(idx)).float()


# -- SeFa -------------------------------------------------------------------------------------
def test_sefa_recovers_known_orthogonal_directions():
    torch.manual_seed(0)
    model = build_model("vae", (1, 64, 64), num_latents=4)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    counts = [100, 80, 50, 26]  # rows of the first layer along each direction: A^T A = sum_i n_i q_i q_i^T
    rows = torch.cat([q[:, i].repeat(c, 1) * torch.where(torch.rand(c, 1) < 0.5, -1.0, 1.0) for i, c in enumerate(counts)])
    # rows along the least-used direction are 10x longer: only the row normalisation keeps the order
    scale = torch.cat([torch.full((c, 1), 10.0 if i == 3 else 1.0) for i, c in enumerate(counts)])
    layer = model.decoder.fc[0]
    assert layer.weight.shape == (256, 4)
    with torch.no_grad():
        layer.weight.copy_(rows * scale)
    gen = Generator(model)
    found = get_method("sefa").fn(gen, 4)
    cos = np.abs(found.directions @ q.numpy())
    np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-6)
    np.testing.assert_allclose(found.info["eigenvalues"], counts, rtol=1e-6)
    values, _ = factorize_weight((rows * scale).numpy())
    assert np.all(np.diff(values) <= 0)


class LinearGenerator(nn.Module):
    """A generator whose first layer is linear with no nonlinearity after it."""

    gaussian = True

    def __init__(self, weight) -> None:
        super().__init__()
        self.num_latents = weight.shape[1]
        self.hparams = {"observation_shape": [weight.shape[0]]}
        self.decoder = nn.Sequential(nn.Linear(weight.shape[1], weight.shape[0]))
        with torch.no_grad():
            self.decoder[0].weight.copy_(weight)

    def decode(self, z):
        return torch.sigmoid(self.decoder(z))


def test_pca_recovers_the_right_singular_vectors_of_a_linear_first_layer():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(32, 5)))
    v, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    gen = Generator(LinearGenerator(torch.as_tensor(u * s @ v.T, dtype=torch.float32)), seed=0)
    found = get_method("pca").fn(gen, 3, num_samples=20000)
    cos = np.abs(found.directions @ v[:, :3])
    assert np.all(np.diag(cos) > 0.99)  # component j of the activations comes from right singular vector j
    ratios = np.asarray(found.info["explained_variance_ratio"])
    np.testing.assert_allclose(ratios, s[:3] ** 2 / (s**2).sum(), atol=0.02)


# -- oracle and scoring -------------------------------------------------------------------------
def test_oracle_is_cached_and_accurate(toy, oracle, tmp_path):
    _, ds = toy
    assert min(oracle.accuracy.values()) > 0.95
    path = oracle_path(ds, 300)
    assert path.is_file() and oracle.path == path
    again = get_oracle(ds, steps=300)
    assert not again.trained_now and again.accuracy == oracle.accuracy
    _, x = ds.sample(20, np.random.default_rng(1))
    np.testing.assert_allclose(again.values(x), oracle.values(x), atol=1e-6)
    assert load_oracle(path).factor_sizes == [4, 4, 2]


def test_oracle_scores_a_perfect_generators_axes_as_aligned(toy, oracle):
    _, ds = toy
    gen = Generator(PerfectGenerator(ds))
    scores = score_directions(gen, np.eye(3), oracle, num_seeds=16, steps=9)
    assert scores["alignment"] > 0.97 and scores["disentanglement"] > 0.9 and scores["completeness"] > 0.9
    assert scores["matches"] == list(oracle.factor_names)
    rot = np.array([[1, 1, 0], [1, -1, 0], [0, 0, 1]]) / np.array([[2**0.5], [2**0.5], [1]])
    mixed = score_directions(gen, rot, oracle, num_seeds=16, steps=9)
    assert mixed["disentanglement"] < scores["disentanglement"] - 0.3


def test_score_effects_known_answers():
    perfect = score_effects(np.diag([0.3, 0.2, 0.1]), ["a", "b", "c"])
    assert perfect["disentanglement"] == pytest.approx(1) and perfect["completeness"] == pytest.approx(1)
    assert perfect["gap"] == pytest.approx(1) and perfect["alignment"] == pytest.approx(1)
    assert perfect["matches"] == ["a", "b", "c"]
    uniform = score_effects(np.ones((3, 3)))
    assert uniform["disentanglement"] == pytest.approx(0) and uniform["completeness"] == pytest.approx(0)
    assert uniform["gap"] == pytest.approx(0) and uniform["alignment"] == pytest.approx(1 / 3)
    swapped = score_effects(np.array([[0.0, 1.0], [1.0, 0.0]]), ["a", "b"])
    assert swapped["matches"] == ["b", "a"] and swapped["alignment"] == pytest.approx(1)


# -- learnt methods ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,options", [
    ("voynov", {"steps": 60, "batch_size": 16, "learning_rate": 3e-3}),
    ("householder", {"steps": 40, "batch_size": 16}),
    ("gradctrl", {"steps": 150, "num_samples": 300}),
    ("potential_flow", {"steps": 40, "batch_size": 8, "timesteps": 4, "learning_rate": 3e-3}),
])
def test_learnt_method_reduces_its_loss(run_dir, name, options):
    from untwine.train.run import open_run

    run = open_run(run_dir)
    model = run.load_model()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = Generator(model, run.dataset(), seed=0)
    torch.manual_seed(0)
    found = get_method(name).fn(gen, 3, **options)
    losses = np.asarray(found.losses)
    assert len(losses) == options["steps"]
    w = max(3, len(losses) // 5)
    assert losses[-w:].mean() < losses[:w].mean()
    norms = np.linalg.norm(found.directions, axis=1)
    assert found.directions.shape == (3, 4) and np.allclose(norms, 1)


def test_householder_directions_are_orthonormal_right_singular_vectors(run_dir):
    from untwine.directions.base import first_layer
    from untwine.train.run import open_run

    run = open_run(run_dir)
    gen = Generator(run.load_model(), run.dataset(), seed=0)
    found = get_method("householder").fn(gen, 4, steps=5, batch_size=8)
    d = found.directions
    np.testing.assert_allclose(d @ d.T, np.eye(4), atol=1e-5)
    w = first_layer(found.model).weight.detach().double().numpy()
    s = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(s, s[0], rtol=1e-5)  # orthogonal up to one scale
    np.testing.assert_allclose(np.linalg.norm(w @ d.T, axis=0), s[0], rtol=1e-5)


# -- the library function and the command ---------------------------------------------------------
def test_find_directions_writes_unit_directions_scores_and_picture(run_dir, oracle, tmp_path):
    out = tmp_path / "sefa"
    result = find_directions(run_dir, "sefa", 3, out, oracle_steps=300, num_seeds=8, steps=5)
    d = np.load(out / "directions.npy")
    assert d.shape == (3, 4) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-6)
    saved = json.loads((out / "scores.json").read_text())
    entry = saved["methods"]["sefa"]
    assert saved["num"] == 3 and np.asarray(entry["effects"]).shape == (3, 3)
    assert 0 <= entry["disentanglement"] <= 1 and 0 <= entry["alignment"] <= 1
    again = score_effects(np.asarray(entry["effects"]))  # the scores are those of the saved effect matrix
    assert entry["disentanglement"] == pytest.approx(again["disentanglement"]) and entry["alignment"] == pytest.approx(again["alignment"])
    assert saved["oracle"]["accuracy"] == oracle.accuracy
    assert (out / "traversal.png").stat().st_size > 0
    assert result["methods"]["sefa"]["num"] == 3


def test_cli_all_methods_one_table(run_dir, tmp_path, capsys):
    out = tmp_path / "all"
    rc = main(["directions", str(run_dir), "--method", "all", "--num", "3", "--out", str(out), "--oracle-steps", "300",
               "--seeds", "4", "--steps", "3", "--train-steps", "3"])
    text = capsys.readouterr().out
    assert rc == 0
    saved = json.loads((out / "scores.json").read_text())
    assert list(saved["methods"]) == list(METHODS)
    assert "In short: " in text.splitlines()[-1]
    assert {n for n, e in saved["methods"].items() if e.get("baseline")} == {"axes", "random"}
    for name in METHODS:
        assert name in text
        assert np.load(out / name / "directions.npy").shape == (3, 4)


@pytest.mark.parametrize("args,message", [
    (["--method", "nope"], "unknown direction method 'nope'"),
    (["--num", "5"], "only 4 dimensions"),
    (["--method", "gradctrl", "--num", "4"], "one direction per factor"),
])
def test_cli_bad_input_is_one_line(run_dir, tmp_path, capsys, args, message):
    rc = main(["directions", str(run_dir), "--out", str(tmp_path / "x"), "--oracle-steps", "300", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_methods_that_need_the_first_layer_refuse_a_generator_without_one(toy):
    _, ds = toy
    gen = Generator(PerfectGenerator(ds))
    for name in ("sefa", "pca"):
        with pytest.raises(UntwineError, match="no linear first layer"):
            get_method(name).fn(gen, 2)


def test_dataset_without_an_oracle_is_one_line():
    from untwine.data import load

    with pytest.raises(UntwineError, match="has no oracle"):
        train_oracle(load("sines"), steps=1)


def test_report_shows_what_untwine_directions_wrote(run_dir):
    from untwine.viz.report import build_report

    page = build_report(run_dir, num_samples=60).read_text()
    assert "Directions in the generator" not in page  # nothing written yet: no section, nothing computed
    find_directions(run_dir, "sefa", 2, oracle_steps=300, num_seeds=4, steps=3)
    page = build_report(run_dir, num_samples=60).read_text()
    assert "Directions in the generator" in page and "sefa" in page and "directions/scores.json" in page
    assert 'id="directions-summary"' in page  # the section opens with its paragraph


def _scores(methods, accuracy=None, chance=None):
    acc = accuracy or {"x": 0.99, "y": 0.98}
    return {"num": 2, "latent_dim": 4, "methods": methods,
            "oracle": {"accuracy": acc, "chance": chance or {k: 0.25 for k in acc},
                       "mean_accuracy": float(np.mean(list(acc.values())))}}


def test_findings_name_the_method_and_the_factor_each_direction_carries():
    from untwine.directions.findings import describe, judge

    sefa = {"alignment": 0.9, "baseline": False, "effects": [[0.02, 0.40], [0.30, 0.01]]}
    axes = {"alignment": 0.5, "baseline": True, "effects": [[0.1, 0.1], [0.1, 0.1]]}
    v = judge(_scores({"axes": axes, "sefa": sefa}))
    assert v["best"] == "sefa" and v["best_baseline"] == "axes"
    # x: direction 1 carries 0.30 of 0.32; y: direction 0 carries 0.40 of 0.41
    assert [(f, j) for f, j, *_ in v["found"]] == [("x", 1), ("y", 0)]
    assert v["found"][0][3] == pytest.approx(0.30 / 0.32)
    text = describe(_scores({"axes": axes, "sefa": sefa}))
    assert text.startswith("sefa found the factors best (alignment 0.90, against 0.50 for the axes baseline)")
    assert "x \u2192 d1 (0.94 of its effect)" in text and "weakly" not in text


def test_findings_never_promote_a_baseline_and_say_when_the_oracle_is_weak():
    from untwine.directions.findings import describe, judge
    from untwine.viz.directions_report import directions_section

    methods = {"random": {"alignment": 0.61, "baseline": True}, "sefa": {"alignment": 0.60, "baseline": False},
               "axes": {"alignment": 0.2}}  # an older file: "axes" is a baseline by name
    scores = _scores(methods, accuracy={"x": 0.9, "y": 0.3}, chance={"x": 0.25, "y": 0.25})
    v = judge(scores)
    assert v["best"] is None and v["candidate"] == "sefa" and v["best_baseline"] == "random"
    assert v["oracle_weak"] and v["oracle_near_chance"] == ["y"]  # 0.3 <= 1.5 x 0.25
    text = describe(scores)
    assert "No method beats the baselines" in text and "near chance on y" in text
    page = directions_section(scores, "/nonexistent")
    assert "Directions of the best method" not in page and "No method beats the baselines" in page
    # a clear lead over every baseline is needed to be named
    assert judge(_scores({"random": {"alignment": 0.5}, "sefa": {"alignment": 0.51}}))["best"] is None
    assert judge(_scores({"random": {"alignment": 0.5}, "sefa": {"alignment": 0.6}}))["best"] == "sefa"
    # a mean accuracy of 0.6 is weak even with no factor near chance
    assert judge(_scores({}, accuracy={"x": 0.6, "y": 0.6}))["oracle_weak"]
