"""Tests of the time-series data: the built-in ``sines`` grid and the labelled-series loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untwine.data.base import GroundTruthDataset
from untwine.data.series import load_series, read_ts, stratified_split
from untwine.data.sines import NOISE_LEVELS, OFFSET, SCALE, Sines
from untwine.errors import UntwineError


def _base(n=1):
    # frequency 2 cycles, amplitude 1.0, phase 0, no trend, sine, no noise
    return np.tile(np.array([[1, 3, 0, 1, 0, 0]]), (n, 1))


def _zero_crossings(x):
    s = np.sign(np.asarray(x) - OFFSET)
    s = s[s != 0]
    return int(np.sum(s[1:] != s[:-1]))


def test_sines_protocol_and_range():
    d = Sines()
    assert isinstance(d, GroundTruthDataset)
    assert d.observation_shape == (1, 128) and d.num_samples == 4 * 4 * 4 * 3 * 3 * 3
    f, x = d.sample(500, np.random.default_rng(0))
    assert x.dtype == torch.float32 and tuple(x.shape) == (500, 1, 128)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # grid index round trip over the whole grid
    idx = np.arange(d.num_samples)
    assert np.array_equal(d.index_of(d.factors_of(idx)), idx)


def test_sines_deterministic_and_seeded():
    f = Sines().sample_factors(64, np.random.default_rng(1))
    a, b = Sines().observations(f), Sines().observations(f)
    assert torch.equal(a, b)
    other = Sines(seed=1).observations(f)
    noisy = f[:, 5] > 0
    assert noisy.any() and not torch.equal(a[noisy], other[noisy])
    assert torch.equal(a[~noisy], other[~noisy])  # noise-free rows do not depend on the seed


def test_frequency_sets_zero_crossings():
    d = Sines()
    for k, cycles in enumerate((1, 2, 3, 4)):
        f = _base()
        f[0, 0] = k
        f[0, 2] = 1  # phase pi/2: no sample sits exactly on a crossing
        assert _zero_crossings(d.observations(f)[0, 0].numpy()) == 2 * cycles


def test_amplitude_sets_range_and_trend_sets_slope():
    d = Sines()
    f = _base(4)
    f[:, 1] = np.arange(4)
    x = d.observations(f)[:, 0].numpy()
    ranges = x.max(1) - x.min(1)
    expected = 2 * SCALE * np.array([0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(ranges, expected, rtol=2e-3)
    f = _base(3)
    f[:, 3] = np.arange(3)
    x = d.observations(f)[:, 0].numpy().astype(np.float64)
    t = np.arange(128) / 128
    slopes = [np.polyfit(t, row - x[1], 1)[0] for row in x]  # the periodic part cancels
    np.testing.assert_allclose(slopes, SCALE * np.array([-0.5, 0.0, 0.5]), atol=1e-5)


def test_waveform_shapes():
    d = Sines()
    f = _base(3)
    f[:, 4] = np.arange(3)
    x = d.observations(f)[:, 0].numpy()
    levels = np.unique(np.round(x[1], 5))
    assert len(levels) == 2  # square: two levels
    np.testing.assert_allclose(levels, [OFFSET - SCALE, OFFSET + SCALE], atol=1e-4)
    diffs = np.diff(x[2])
    assert np.sum(diffs < -0.1) == 1  # sawtooth, 2 cycles from phase 0: one drop inside the window
    assert np.all(diffs[diffs > -0.1] > 0)
    assert len(np.unique(np.round(x[0], 4))) > 20  # sine: smooth


def test_noise_is_a_scaled_fixed_pattern():
    d = Sines()
    f = _base(3)
    f[:, 1] = 0  # small amplitude: nothing is clipped
    f[:, 5] = np.arange(3)
    x = d.observations(f)[:, 0].numpy().astype(np.float64)
    r1, r2 = x[1] - x[0], x[2] - x[0]
    assert np.abs(r1).max() > 0.005
    np.testing.assert_allclose(r2, r1 * NOISE_LEVELS[2] / NOISE_LEVELS[1], atol=1e-6)
    np.testing.assert_allclose(r1.std() / SCALE, NOISE_LEVELS[1], rtol=0.25)


def test_sines_bad_input():
    with pytest.raises(UntwineError, match="length"):
        Sines(length=4)
    with pytest.raises(UntwineError, match="out of range"):
        Sines().observations(np.array([[9, 0, 0, 0, 0, 0]]))
    with pytest.raises(UntwineError, match="shape"):
        Sines().observations(np.zeros((2, 3)))


# -- labelled series ---------------------------------------------------------------------
def _toy(rng, n, t=20):
    y = np.arange(n) % 2
    x = np.sin(np.linspace(0, 3, t))[None] * (1 + y[:, None]) + 0.01 * rng.standard_normal((n, t))
    return x, y


def test_load_npz_split_and_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    xa, ya = _toy(rng, 12)
    xb, yb = _toy(rng, 8)
    xb[0, 0] = 100.0  # outside the train range: clipped
    p = tmp_path / "toy.npz"
    np.savez(p, X_train=xa, y_train=ya, X_test=xb, y_test=yb, class_names=np.array(["low", "high"]))
    d = load_series(p)
    assert d.X_train.shape == (12, 1, 20) and d.X_test.shape == (8, 1, 20)
    assert d.class_names == ("low", "high")
    assert np.array_equal(d.y_train, ya) and np.array_equal(d.y_test, yb)
    assert d.X_train.min() == 0.0 and d.X_train.max() == 1.0
    assert d.X_test[0, 0, 0] == 1.0
    np.testing.assert_allclose(d.X_train[:, 0], (xa - xa.min()) / (xa.max() - xa.min()), atol=1e-6)
    # X, y only: seeded stratified split
    q = tmp_path / "lone.npz"
    np.savez(q, X=np.concatenate([xa, xb[1:]]), y=np.concatenate([ya, yb[1:]]))
    a, b = load_series(q, seed=3), load_series(q, seed=3)
    assert np.array_equal(a.X_test, b.X_test) and a.X_test.shape[0] + a.X_train.shape[0] == 19
    assert set(a.y_test.tolist()) == {0, 1}


def test_load_csv_pair_and_ts(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("TRAIN", 10), ("TEST", 6)):
        x, y = _toy(rng, n, t=16)
        rows = [",".join([f"c{int(lab)}"] + [f"{v:.6f}" for v in row]) for row, lab in zip(x, y)]
        (tmp_path / f"Toy_{split}.csv").write_text("\n".join(rows) + "\n")
    d = load_series(tmp_path / "Toy_TRAIN.csv")
    assert d.name == "Toy" and d.X_train.shape == (10, 1, 16) and d.X_test.shape == (6, 1, 16)
    assert d.class_names == ("c0", "c1")
    # a two-channel .ts file in a folder with its pair
    folder = tmp_path / "Two"
    folder.mkdir()
    head = "@problemName Two\n@timeStamps false\n@univariate false\n@classLabel true a b\n@data\n"
    body = "1,2,3:4,5,6:a\n3,2,1:6,5,4:b\n"
    for split in ("TRAIN", "TEST"):
        (folder / f"Two_{split}.ts").write_text(head + body)
    x, labels = read_ts(folder / "Two_TRAIN.ts")
    assert x.shape == (2, 2, 3) and labels.tolist() == ["a", "b"]
    d = load_series(folder)
    assert d.X_train.shape == (2, 2, 3)
    np.testing.assert_allclose(d.X_train[0], [[0, 0.5, 1], [0, 0.5, 1]])  # per-channel min/max


def test_loader_errors(tmp_path):
    with pytest.raises(UntwineError, match="no such file"):
        load_series(tmp_path / "missing.npz")
    p = tmp_path / "bad.npz"
    np.savez(p, images=np.zeros((3, 4)))
    with pytest.raises(UntwineError, match="expected arrays"):
        load_series(p)
    q = tmp_path / "Ragged_TRAIN.csv"
    q.write_text("0,1,2,3\n1,1,2\n")
    with pytest.raises(UntwineError, match="different lengths"):
        load_series(q)
    with pytest.raises(UntwineError, match="unknown series"):
        load_series("NoSuchSet", data_dir=tmp_path)


def test_stratified_split_keeps_classes():
    y = np.array(["a"] * 9 + ["b"] * 3)
    tr, te = stratified_split(y, 1 / 3, seed=0)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(12))
    assert (y[te] == "a").sum() == 3 and (y[te] == "b").sum() == 1


def test_series_split_as_ground_truth(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _toy(rng, 10)
    p = tmp_path / "t.npz"
    np.savez(p, X_train=x, y_train=y, X_test=x, y_test=y)
    gt = load_series(p).ground_truth("train")
    f, obs = gt.sample(7, np.random.default_rng(0))
    assert obs.shape == (7, 1, 20) and f.shape == (7, 1) and not gt.is_full_grid
    d = load_series(p)
    for row, lab in zip(obs.numpy(), f[:, 0]):  # every drawn series is a train row of its label
        hit = np.nonzero(np.all(np.isclose(d.X_train, row[None]), axis=(1, 2)))[0]
        assert hit.size >= 1 and d.y_train[hit[0]] == lab
