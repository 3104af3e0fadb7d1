"""Held-out means held-out: where `untwine evaluate` draws its test rows, for every kind of dataset
(labelled series with a test split, lone series files, files, procedural grids), and regression
targets of series files discretised as a factor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from untwine.data import load
from untwine.data.base import HELD_OUT, HELD_OUT_ROWS, SAME_DISTRIBUTION
from untwine.data.series import load_series

SMALL = dict(num_train=60, num_test=40, metrics="mig,dci,explicitness", reference_scores=False)


def _series(rng, n, t=16, offset=0.0):
    """Two classes of curves; ``offset`` marks a split (every test value differs from every train value)."""
    y = np.arange(n) % 2
    x = np.sin(np.linspace(0, 3, t))[None] * (1 + y[:, None]) + 0.05 * rng.standard_normal((n, t)) + offset
    return x, y


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    from untwine.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("series_split")
    rng = np.random.default_rng(0)
    xa, ya = _series(rng, 12)
    xb, yb = _series(rng, 9, offset=0.5)  # the test split: shifted, so its rows are told apart from train rows
    np.savez(root / "toy.npz", X_train=xa, y_train=ya, X_test=xb, y_test=yb)
    train("dts", str(root / "toy.npz"), steps=5, out=root / "run", batch_size=8, seed=0, set={"groups": "2,2"}, num_latents=4)
    yield root
    torch.set_num_threads(threads)


def _rows_of(x: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Row of ``split`` equal to each observation of ``x`` (-1 where none is)."""
    eq = np.all(np.isclose(x[:, None], split[None], atol=0, rtol=0), axis=(2, 3))
    return np.where(eq.any(axis=1), eq.argmax(axis=1), -1)


def test_series_test_scores_come_from_the_test_split_only(series_run, monkeypatch):
    """Every row encoded for the test side is a row of the test split (the bug: all were train rows)."""
    from untwine.models.encoder import ModelEncoder
    from untwine.train import evaluate_run

    seen = []
    original = ModelEncoder.encode_indices

    def spy(self, dataset, indices, **kw):
        seen.append(dataset.observations_at(indices).numpy())
        return original(self, dataset, indices, **kw)

    monkeypatch.setattr(ModelEncoder, "encode_indices", spy)
    evaluate_run(series_run / "run", seed=0, **SMALL)
    d = load_series(series_run / "toy.npz")
    train_obs, test_obs = seen
    assert test_obs.shape[0] == 40 and train_obs.shape[0] == 60
    assert (_rows_of(test_obs, d.X_test) >= 0).all()  # all from the test split
    assert (_rows_of(test_obs, d.X_train) < 0).all()  # none a training row
    assert (_rows_of(train_obs, d.X_train) >= 0).all()
    metrics = json.loads((series_run / "run" / "metrics.json").read_text())
    assert metrics["_test_split"] == HELD_OUT
    settings = json.loads((series_run / "run" / "evaluation.json").read_text())
    assert settings["test_split"]["kind"] == HELD_OUT and settings["test_split"]["test_data"] == "toy_test"


def test_every_dataset_kind_says_where_its_test_rows_come_from(tmp_path):
    rng = np.random.default_rng(1)
    # procedural full grid: independent draws, said so
    rows = load("sines").evaluation_rows(50, 30, np.random.default_rng(0))
    assert rows.test_split == SAME_DISTRIBUTION and "same distribution" in rows.note
    # series with a test split: the other split
    xa, ya = _series(rng, 10)
    xb, yb = _series(rng, 6)
    np.savez(tmp_path / "pair.npz", X_train=xa, y_train=ya, X_test=xb, y_test=yb)
    gt = load(str(tmp_path / "pair.npz"))
    rows = gt.evaluation_rows(50, 30, np.random.default_rng(0))
    assert rows.test_split == HELD_OUT and rows.test_dataset.name == "pair_test" and rows.test.max() < 6
    # a lone series file: its stratified split, named as such
    np.savez(tmp_path / "lone.npz", X=np.concatenate([xa, xb]), y=np.concatenate([ya, yb]))
    rows = load(str(tmp_path / "lone.npz")).evaluation_rows(50, 30, np.random.default_rng(0))
    assert rows.test_split == HELD_OUT and "stratified split of one file" in rows.note
    # image files, full grid or not: disjoint rows
    f = np.stack(np.meshgrid(np.arange(4), np.arange(3), indexing="ij"), -1).reshape(-1, 2)
    imgs = rng.integers(0, 2, size=(len(f), 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "grid.npz", images=imgs, factors=f)
    np.savez(tmp_path / "rows.npz", images=np.concatenate([imgs, imgs]), factors=np.concatenate([f, f]))
    for name, full in (("grid.npz", True), ("rows.npz", False)):
        ds = load(str(tmp_path / name))
        assert ds.is_full_grid is full
        rows = ds.evaluation_rows(200, 100, np.random.default_rng(0))
        assert rows.test_split == HELD_OUT_ROWS and rows.test_dataset is ds
        assert not set(rows.train.tolist()) & set(rows.test.tolist())
        assert len(set(rows.test.tolist())) == round(ds.num_samples / 3)  # a third of the rows, all drawn


def test_a_file_without_a_test_split_is_labelled_so_in_metrics_json(tmp_path):
    """A dataset with no test split of its own: metrics.json says its test rows were set aside."""
    from untwine.train import evaluate_run, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
        imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
        for i, (a, b) in enumerate(f):
            imgs[i, 2 + 3 * a: 5 + 3 * a, 2 + 3 * b: 5 + 3 * b] = 1
        np.savez(tmp_path / "toy.npz", images=imgs, factors=f)
        train("beta_vae", str(tmp_path / "toy.npz"), steps=3, out=tmp_path / "run", batch_size=8, seed=0)
        evaluate_run(tmp_path / "run", seed=0, **SMALL)
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["_test_split"] == HELD_OUT_ROWS
    assert "set aside" in json.loads((tmp_path / "run" / "evaluation.json").read_text())["test_split"]["note"]


# -- regression targets -------------------------------------------------------------------
_TS_HEAD = "@problemName Reg\n@timeStamps false\n@univariate true\n@equalLength true\n@targetlabel true\n@data\n"


def _regression_ts(folder, name="Reg", head=_TS_HEAD, n=(30, 12)):
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    targets = {}
    for split, m in zip(("TRAIN", "TEST"), n):
        t = np.round(rng.uniform(-1, 1, size=m), 4)
        rows = [",".join(f"{v:.4f}" for v in rng.standard_normal(8)) + f":{y}" for y in t]
        (folder / f"{name}_{split}.ts").write_text(head.replace("Reg", name) + "\n".join(rows) + "\n")
        targets[split] = t
    return targets


def test_a_regression_ts_file_becomes_binned_target_classes_with_one_warning(tmp_path):
    """aeon's regression files (@targetLabel true) used to load with every distinct target a class."""
    from untwine._checks import discretize_factors
    from untwine.errors import UntwineWarning

    t = _regression_ts(tmp_path / "Reg")
    with pytest.warns(UntwineWarning, match="real-valued") as caught:
        d = load_series(tmp_path / "Reg", factor_bins=4)
    assert len([w for w in caught if issubclass(w.category, UntwineWarning)]) == 1
    assert d.regression and d.num_classes <= 4  # not 42 classes
    both = np.concatenate([t["TRAIN"], t["TEST"]])
    expected = discretize_factors(both[:, None], 4)[:, 0]  # the --factor-bins rule, on both splits
    _, expected = np.unique(expected, return_inverse=True)
    assert np.array_equal(np.concatenate([d.y_train, d.y_test]), expected)
    assert d.ground_truth("train").factor_names == ("target",)
    assert d.class_names[0].startswith(f"[{both.min():.4g}, ") and d.class_names[-1].endswith(f"{both.max():.4g}]")


def test_real_valued_csv_and_npz_targets_are_regression(tmp_path):
    from untwine.errors import UntwineWarning

    rng = np.random.default_rng(6)
    x = rng.standard_normal((30, 10))
    y = rng.uniform(0, 5, size=30)
    np.savez(tmp_path / "lone.npz", X=x, y=y)
    with pytest.warns(UntwineWarning, match="regression"):
        d = load_series(tmp_path / "lone.npz", factor_bins=3)
    assert d.regression and d.num_classes == 3 and d.X_test.shape[0] > 0  # stratified by bin
    rows = ["\n".join(f"{v:.3f}," + ",".join(f"{u:.3f}" for u in r) for v, r in zip(y[a:b], x[a:b])) for a, b in ((0, 20), (20, 30))]
    (tmp_path / "R_TRAIN.csv").write_text(rows[0] + "\n")
    (tmp_path / "R_TEST.csv").write_text(rows[1] + "\n")
    with pytest.warns(UntwineWarning, match="regression"):
        assert load_series(tmp_path / "R_TRAIN.csv").regression
    # integer labels stay classes
    np.savez(tmp_path / "cls.npz", X=x, y=np.arange(30) % 3)
    assert not load_series(tmp_path / "cls.npz").regression


def test_bundled_series_lists_only_sets_that_load(tmp_path):
    from untwine.data.series import bundled_series

    _regression_ts(tmp_path / "Reg")
    _regression_ts(tmp_path / "Cls", name="Cls", head=_TS_HEAD.replace("@targetlabel true", "@classLabel true a b"))
    _regression_ts(tmp_path / "Ragged", name="Ragged", head=_TS_HEAD.replace("@equalLength true", "@equalLength false"))
    _regression_ts(tmp_path / "Stamped", name="Stamped", head=_TS_HEAD.replace("@timeStamps false", "@timeStamps true"))
    assert bundled_series(tmp_path) == ["Cls", "Reg"]
