"""Tests of the information helpers, MIG and SAP."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from untwine.errors import UntwineError
from untwine.metrics._info import discrete_entropy, histogram_discretize, mutual_info_matrix
from untwine.metrics.mig import mig
from untwine.metrics.sap import sap, svm_1d_ovr

SIZES = [3, 6, 40, 32, 32]


def hash_uniform(n, d, salt):
    """Deterministic uniforms in [0, 1) from the murmur3 64-bit finaliser (no RNG)."""
    x = (np.arange(n * d, dtype=np.uint64) + np.uint64(salt) * np.uint64(1000003)).reshape(n, d)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return (x >> np.uint64(11)).astype(np.float64) / 9007199254740992.0


def reference_case(n, salt):
    """Small fixed input (600 train / 300 test points) used for the frozen dlib values."""
    u = hash_uniform(n, 7, salt)
    f = np.stack([(u[:, 0] * 2).astype(np.int64), (u[:, 1] * 3).astype(np.int64), (u[:, 2] * 5).astype(np.int64)], 1)
    z = np.stack(
        [
            f[:, 0] + 0.8 * u[:, 3],
            f[:, 1] * 0.7 + 0.3 * f[:, 2] + 0.9 * u[:, 4],
            f[:, 2] * 0.5 + 1.2 * u[:, 5],
            u[:, 6] + 0.2 * f[:, 1],
        ],
        1,
    )
    return z, f


# Produced by disentanglement_lib's own implementation (commit 86a644d:
# mig._compute_mig, sap_score._compute_sap with scikit-learn 1.9.1, histogram
# discretiser with 20 bins), run outside the project on reference_case(600, 1)
# as train and reference_case(300, 2) as test.
DLIB_FROZEN = {"mig": 0.49340508141, "sap": 0.271111111111, "sap_continuous": 0.530033157601}


def dsprites_like(seed, n, noise=0.3):
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    mix = np.random.default_rng(100).normal(size=(5, 10))
    mix[:, :5] += 3 * np.eye(5)
    z = (f / np.array(SIZES)) @ mix + noise * rng.normal(size=(n, 10))
    return z, f


# ---------------------------------------------------------------- helpers


def test_histogram_discretize_known_bins():
    x = np.arange(21, dtype=float)  # edges 0, 1, ..., 20: value k -> bin k, maximum -> last bin
    assert histogram_discretize(x, 20)[:, 0].tolist() == list(range(20)) + [19]
    y = np.array([0.0, 0.5, 4.9, 5.0, 10.0])
    assert histogram_discretize(y, 2)[:, 0].tolist() == [0, 0, 0, 1, 1]
    assert histogram_discretize(np.full(5, 3.0), 20)[:, 0].tolist() == [10] * 5  # constant: one bin


def test_histogram_discretize_matches_numpy_histogram_counts():
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        x = rng.normal(size=(3000, 3)).astype(dtype)
        d = histogram_discretize(x, 20)
        for j in range(3):
            counts, _ = np.histogram(x[:, j], 20)
            assert np.array_equal(np.bincount(d[:, j], minlength=20), counts)


def test_mutual_info_matrix_hand_values():
    a = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    m = mutual_info_matrix(a, a)
    assert np.allclose(m, [[np.log(2), 0.0], [0.0, np.log(2)]], atol=1e-15)
    h = discrete_entropy(np.array([[0], [0], [0], [7]]))
    assert h[0] == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)), abs=1e-15)
    assert mutual_info_matrix(np.zeros((4, 1)), a).tolist() == [[0.0, 0.0]]


def test_mutual_info_matrix_equals_sklearn_per_pair():
    rng = np.random.default_rng(1)
    codes = histogram_discretize(rng.normal(size=(2000, 4)) + rng.integers(0, 3, (2000, 1)), 20)
    factors = np.stack([rng.integers(0, s, 2000) * 5 - 3 for s in (2, 7, 40)], 1)  # sparse labels
    m = mutual_info_matrix(codes, factors)
    for j in range(4):
        for k in range(3):
            assert m[j, k] == pytest.approx(mutual_info_score(factors[:, k], codes[:, j]), abs=1e-12)
    h = discrete_entropy(factors)
    for k in range(3):
        assert h[k] == pytest.approx(mutual_info_score(factors[:, k], factors[:, k]), abs=1e-12)


# ---------------------------------------------------------------- MIG


def test_mig_known_answers():
    v = np.repeat(np.arange(4), 25)
    # z0 = v (I = log 4), z1 = v // 2 (I = log 2): gap log 2 / H(v) = 0.5
    assert mig(np.stack([v, v // 2], 1).astype(float), v)["mig"] == pytest.approx(0.5, abs=1e-12)
    # z0 = v // 2 and z1 = v % 2 carry log 2 each: gap 0
    assert mig(np.stack([v // 2, v % 2], 1).astype(float), v)["mig"] == pytest.approx(0.0, abs=1e-12)
    # one code equals the factor, the other is constant: MIG 1
    assert mig(np.stack([v, np.zeros(100)], 1), v)["mig"] == pytest.approx(1.0, abs=1e-12)


def test_mig_frozen_dlib_value():
    z, f = reference_case(600, 1)
    assert mig(z, f)["mig"] == pytest.approx(DLIB_FROZEN["mig"], abs=1e-9)


def test_mig_codes_equal_factors_near_one_and_noise_near_zero():
    rng = np.random.default_rng(2)
    f = np.stack([rng.integers(0, s, 10000) for s in (3, 6, 20)], 1)
    assert mig(f.astype(float), f)["mig"] > 0.99
    assert mig(rng.normal(size=(10000, 6)), f)["mig"] < 0.01


def test_mig_invariances():
    z, f = dsprites_like(3, 4000)
    base = mig(z, f)["mig"]
    perm = np.random.default_rng(0).permutation(10)
    assert mig(z[:, perm], f)["mig"] == pytest.approx(base, abs=1e-12)
    assert mig(z * 4.0 + 1.5, f)["mig"] == pytest.approx(base, abs=1e-12)
    relabel = f.copy()
    for k, s in enumerate(SIZES):
        relabel[:, k] = np.random.default_rng(k).permutation(s)[f[:, k]] * 3 + 11
    assert mig(z, relabel)["mig"] == pytest.approx(base, abs=1e-12)


def test_mig_float32_codes_binned_in_their_dtype():
    z, f = dsprites_like(4, 3000)
    z32 = z.astype(np.float32)
    d = histogram_discretize(z32, 20)
    m = mutual_info_matrix(d, f)
    h = discrete_entropy(f)
    top = -np.sort(-m, axis=0)
    assert mig(z32, f)["mig"] == pytest.approx(float(np.mean((top[0] - top[1]) / h)), abs=1e-12)


def test_mig_bad_input():
    z, f = dsprites_like(5, 200)
    with pytest.raises(UntwineError, match="200 rows but factors has 199"):
        mig(z, f[:199])
    z[3, 2] = np.nan
    with pytest.raises(UntwineError, match="non-finite"):
        mig(z, f)
    with pytest.raises(UntwineError, match="at least 2 code dimensions"):
        mig(np.arange(10.0), np.arange(10) % 2)
    with pytest.raises(UntwineError, match="factor 1 takes a single value"):
        mig(np.random.default_rng(0).normal(size=(10, 2)), np.stack([np.arange(10) % 2, np.zeros(10)], 1))


# ---------------------------------------------------------------- SAP


def test_svm_1d_matches_sklearn_linearsvc():
    rng = np.random.default_rng(6)
    n = 3000
    y_multi = rng.integers(0, 5, n)
    y_multi[y_multi == 4] = rng.integers(0, 5, int((y_multi == 4).sum()))  # imbalanced classes
    y_bin = (rng.random(n) < 0.3).astype(np.int64)
    x = 0.6 * y_multi + 1.5 * y_bin + rng.normal(size=n) + 2.0
    fits = svm_1d_ovr(x, [y_multi, y_bin], [5, 2])
    for (w, b), y in zip(fits, (y_multi, y_bin)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = LinearSVC(C=0.01, class_weight="balanced", tol=1e-8, max_iter=100000).fit(x[:, None], y)
        assert np.allclose(w, clf.coef_.ravel(), atol=1e-5)
        assert np.allclose(b, clf.intercept_, atol=1e-5)


def test_sap_frozen_dlib_values():
    z, f = reference_case(600, 1)
    zt, ft = reference_case(300, 2)
    assert sap(z, f, zt, ft)["sap"] == pytest.approx(DLIB_FROZEN["sap"], abs=2e-3)
    cont = sap(z, f.astype(float), zt, ft.astype(float), continuous_factors=True)["sap"]
    assert cont == pytest.approx(DLIB_FROZEN["sap_continuous"], abs=1e-9)


def test_sap_known_answers():
    rng = np.random.default_rng(7)
    n = 4000
    f = rng.integers(0, 2, (n, 2))
    ft = rng.integers(0, 2, (n, 2))
    # each binary factor read exactly by its own code; the other code is
    # independent of it, so its accuracy is about 1/2 and SAP about 1/2
    s = sap(f.astype(float), f, ft.astype(float), ft)["sap"]
    assert 0.45 < s < 0.55
    # continuous factors: own code R^2 = 1, other code R^2 ~ 0
    c = sap(f.astype(float), f.astype(float), ft, ft, continuous_factors=True)["sap"]
    assert c == pytest.approx(1.0, abs=0.01)
    # squared correlation by hand
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 1.0, 1.0, 3.0])
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    codes = np.stack([x, np.array([1.0, 0.0, 0.0, 1.0])], 1)
    other = np.corrcoef(codes[:, 1], y)[0, 1] ** 2
    got = sap(codes, y[:, None], codes, y[:, None], continuous_factors=True)["sap"]
    assert got == pytest.approx(abs(r2 - other), abs=1e-12)


def test_sap_noise_near_zero_and_signal_higher():
    z, f = dsprites_like(8, 6000)
    zt, ft = dsprites_like(9, 3000)
    noise = np.random.default_rng(10).normal(size=z.shape)
    noise_t = np.random.default_rng(11).normal(size=zt.shape)
    assert sap(noise, f, noise_t, ft)["sap"] < 0.02
    rng = np.random.default_rng(15)
    g, gt = rng.integers(0, 2, (6000, 3)), rng.integers(0, 2, (3000, 3))
    signal = np.hstack([g + 0.3 * rng.normal(size=g.shape), rng.normal(size=(6000, 2))])
    signal_t = np.hstack([gt + 0.3 * rng.normal(size=gt.shape), rng.normal(size=(3000, 2))])
    assert sap(signal, g, signal_t, gt)["sap"] > 0.4


def test_sap_invariances():
    z, f = dsprites_like(12, 3000)
    zt, ft = dsprites_like(13, 1500)
    base = sap(z, f, zt, ft)["sap"]
    perm = np.random.default_rng(1).permutation(10)
    assert sap(z[:, perm], f, zt[:, perm], ft)["sap"] == pytest.approx(base, abs=1e-12)
    maps = [np.random.default_rng(20 + k).permutation(s) for k, s in enumerate(SIZES)]
    rel = np.stack([maps[k][f[:, k]] for k in range(5)], 1)
    rel_t = np.stack([maps[k][ft[:, k]] for k in range(5)], 1)
    assert sap(z, rel, zt, rel_t)["sap"] == pytest.approx(base, abs=1e-3)


def test_sap_bad_input():
    z, f = dsprites_like(14, 100)
    with pytest.raises(UntwineError, match="codes_test has 3 columns but codes_train has 10"):
        sap(z, f, z[:, :3], f)
    with pytest.raises(UntwineError, match="codes_test has 100 rows but factors_test has 50"):
        sap(z, f, z, f[:50])
    bad = z.copy()
    bad[0, 0] = np.inf
    with pytest.raises(UntwineError, match="codes_train: 1 non-finite"):
        sap(bad, f, z, f)
    with pytest.raises(UntwineError, match="at least 2 code dimensions"):
        sap(z[:, :1], f, z[:, :1], f)


def _pairwise_sklearn(a, b):
    return np.array([[mutual_info_score(b[:, k], a[:, j]) for k in range(b.shape[1])] for j in range(a.shape[1])])


def test_vectorised_mutual_info_matrix_equals_sklearn_per_pair():
    # sparse codes (most rows at one label), label gaps, negative and constant columns, a column with
    # itself: the per-column tables (and the mirrored triangle) agree with sklearn pair by pair
    from untwine.metrics._info import _mi_tables

    rng = np.random.default_rng(3)
    for n, d, k in [(50, 7, 3), (300, 12, 5), (4, 3, 2)]:
        a = rng.integers(0, 20, (n, d)) * (rng.random((n, d)) < 0.2)
        a[:, 1] = 3  # constant
        a[:, 2] = rng.integers(-4, 4, n) * 5  # gaps and negatives
        b = rng.integers(0, 6, (n, k)) * 7 - 10
        b[:, 0] = a[:, 0] % 3
        m = mutual_info_matrix(a, b)
        np.testing.assert_allclose(m, _pairwise_sklearn(a, b), rtol=0, atol=1e-12)
        np.testing.assert_allclose(mutual_info_matrix(a, a), _pairwise_sklearn(a, a), rtol=0, atol=1e-12)
    assert _mi_tables is not None


def test_vectorised_histogram_discretize_equals_numpy_per_column():
    # the first guess plus exact edge comparisons give np.histogram's bins, also on the edges themselves
    def reference(x, bins):
        return np.stack([np.searchsorted(np.histogram_bin_edges(c, bins)[:-1], c, side="right") - 1 for c in x.T], 1)

    rng = np.random.default_rng(4)
    for t, (n, d, bins) in enumerate([(200, 5, 20), (37, 3, 7), (1, 2, 20), (500, 4, 1), (300, 6, 33)]):
        x = rng.standard_normal((n, d)) * 10.0 ** (3 * t - 6)
        x[:, 0] = np.round(x[:, 0] * 3)
        x[:, 1] = 2.5
        x = x.astype(np.float32) if t % 2 else x
        np.testing.assert_array_equal(histogram_discretize(x, bins), reference(x, bins))
    edges = np.histogram_bin_edges(np.array([0.1, 0.7]), 20)
    on_edges = np.clip(np.concatenate([edges, np.nextafter(edges, -1), np.nextafter(edges, 1)]), 0.1, 0.7)[:, None]
    np.testing.assert_array_equal(histogram_discretize(on_edges, 20), reference(on_edges, 20))
