"""Tests of Modularity, Explicitness, IRS and the unsupervised scores."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from untwine.errors import UntwineError
from untwine.metrics.explicitness import explicitness, logistic_regression_proba, mean_ovr_auc
from untwine.metrics.irs import irs
from untwine.metrics.modularity import modularity, modularity_from_mi
from untwine.metrics.unsupervised import gaussian_total_correlation, gaussian_wasserstein_correlation, unsupervised

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
# modularity_explicitness.modularity / explicitness_per_factor with
# scikit-learn 1.9.1, irs.scalable_disentanglement_score after
# make_discretizer and _drop_constant_dims, the body of
# unsupervised_metrics.unsupervised_metrics; histogram discretiser, 20 bins),
# run outside the project on reference_case(600, 1) as train and
# reference_case(300, 2) as test.
DLIB_FROZEN = {
    "modularity": 0.925255080198,
    "explicitness_train": 0.950424842152,
    "explicitness_test": 0.936722691186,
    "irs": 0.488233304734,
    "gaussian_total_correlation": 0.265345878838,
    "gaussian_wasserstein_correlation": 0.10442535126,
    "gaussian_wasserstein_correlation_norm": 0.0648290846088,
    "mutual_info_score": 0.334892381198,
}


def dsprites_like(seed, n, noise=0.3):
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    mix = np.random.default_rng(100).normal(size=(5, 10))
    mix[:, :5] += 3 * np.eye(5)
    z = (f / np.array(SIZES)) @ mix + noise * rng.normal(size=(n, 10))
    return z, f


def test_frozen_dlib_values():
    z, f = reference_case(600, 1)
    zt, ft = reference_case(300, 2)
    got = {}
    got.update(modularity(z, f))
    got.update(explicitness(z, f, zt, ft))
    got.update(irs(z, f))
    got.update(unsupervised(z))
    assert set(got) == set(DLIB_FROZEN)
    for key, ref in DLIB_FROZEN.items():
        tol = 1e-4 if key.startswith("explicitness") else 1e-9
        assert got[key] == pytest.approx(ref, abs=tol), key


# ---------------------------------------------------------------- modularity


def test_modularity_from_mi_hand_value():
    m = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 0.0]])
    # code 0 is perfectly modular (1), code 1 splits evenly (0), code 2 carries nothing (0)
    assert modularity_from_mi(m) == pytest.approx(1.0 / 3.0, abs=1e-15)
    m3 = np.array([[2.0, 1.0, 1.0]])  # delta = (6 - 4) / (4 * 2)
    assert modularity_from_mi(m3) == pytest.approx(0.75, abs=1e-15)


def test_modularity_codes_equal_factors_and_invariances():
    rng = np.random.default_rng(0)
    f = np.stack([rng.integers(0, s, 10000) for s in (3, 6, 20)], 1)
    assert modularity(f.astype(float), f)["modularity"] > 0.99
    z, g = dsprites_like(1, 4000)
    base = modularity(z, g)["modularity"]
    perm = rng.permutation(10)
    assert modularity(z[:, perm], g)["modularity"] == pytest.approx(base, abs=1e-12)
    assert modularity(z * 0.25 - 3.0, g)["modularity"] == pytest.approx(base, abs=1e-12)
    relabel = np.stack([np.random.default_rng(k).permutation(s)[g[:, k]] for k, s in enumerate(SIZES)], 1)
    assert modularity(z, relabel)["modularity"] == pytest.approx(base, abs=1e-12)


def test_modularity_of_one_factor_is_undefined():
    """delta is 0/0 with one factor: NaN with a warning, not an error nor a conventional 1."""
    from untwine.metrics._undefined import UndefinedScoreWarning

    z, f = dsprites_like(2, 100)
    with pytest.warns(UndefinedScoreWarning, match="modularity is undefined with a single factor"):
        assert np.isnan(modularity(z, f[:, :1])["modularity"])


def test_modularity_bad_input():
    z, f = dsprites_like(2, 100)
    with pytest.raises(UntwineError, match="100 rows but factors has 99"):
        modularity(z, f[:99])


# ---------------------------------------------------------------- explicitness


def test_logistic_regression_matches_sklearn():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 4))
    for n_classes in (2, 5):
        y = np.argmax(x[:, :2] @ rng.normal(size=(2, n_classes)) + rng.normal(size=(1500, n_classes)), axis=1)
        (p,) = logistic_regression_proba(x, y, [x], n_classes)
        ref = LogisticRegression().fit(x, y).predict_proba(x)
        assert np.allclose(p, ref, atol=1e-5)


def test_liblinear_ovr_matches_sklearn_liblinear():
    from sklearn.multiclass import OneVsRestClassifier

    rng = np.random.default_rng(31)
    x = rng.normal(size=(1500, 4))
    for n_classes in (2, 5):
        y = np.argmax(x[:, :2] @ rng.normal(size=(2, n_classes)) + rng.normal(size=(1500, n_classes)), axis=1)
        (p,) = logistic_regression_proba(x, y, [x], n_classes, classifier="liblinear_ovr")
        clf = OneVsRestClassifier(LogisticRegression(solver="liblinear", tol=1e-10)).fit(x, y)
        assert np.allclose(p, clf.predict_proba(x), atol=1e-6)
    with pytest.raises(UntwineError, match="unknown classifier"):
        explicitness(x, y, x, y, classifier="svm")


def test_mean_ovr_auc_hand_value_and_sklearn():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])
    # class 0 positives score 0.9, 0.6 vs negatives 0.6, 0.2: 3 wins + 1 tie out of 4 -> 0.875
    assert mean_ovr_auc(proba, labels) == pytest.approx(0.875, abs=1e-15)
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(4), size=300).round(2)  # rounding creates ties
    lab = rng.integers(0, 4, 300)
    assert mean_ovr_auc(p, lab) == pytest.approx(roc_auc_score(np.eye(4)[lab], p), abs=1e-12)


def test_explicitness_signal_noise_and_invariances():
    rng = np.random.default_rng(5)
    f, ft = rng.integers(0, 4, (3000, 3)), rng.integers(0, 4, (1500, 3))
    high = explicitness(f.astype(float), f, ft.astype(float), ft)
    assert high["explicitness_train"] > 0.95 and high["explicitness_test"] > 0.95
    noise = explicitness(rng.normal(size=(3000, 5)), f, rng.normal(size=(1500, 5)), ft)
    assert abs(noise["explicitness_test"] - 0.5) < 0.03
    z, g = dsprites_like(6, 2000)
    zt, gt = dsprites_like(7, 1000)
    base = explicitness(z, g, zt, gt)
    perm = rng.permutation(10)
    moved = explicitness(z[:, perm] * 4.0 + 1.0, g, zt[:, perm] * 4.0 + 1.0, gt)
    for key in base:
        assert moved[key] == pytest.approx(base[key], abs=1e-4)


def test_explicitness_bad_input():
    z, f = dsprites_like(8, 100)
    with pytest.raises(UntwineError, match="factors_test has 2 columns but factors_train has 5"):
        explicitness(z, f, z, f[:, :2])
    bad = z.copy()
    bad[5, 1] = np.nan
    with pytest.raises(UntwineError, match="codes_test: 1 non-finite"):
        explicitness(z, f, bad, f)


# ---------------------------------------------------------------- IRS


def test_irs_hand_value():
    # latent 0: max deviation 6, within-group deviation 1 -> 1 - 1/6
    # latent 1: max deviation 2, within-group deviation 2 -> 0; weighted mean 5/8
    z = np.array([[0.0, 0.0], [2.0, 4.0], [10.0, 0.0], [12.0, 4.0]])
    v = np.array([0, 0, 1, 1])
    for q in (1.0, 0.99):
        assert irs(z, v, quantile=q, factor_bins=None)["irs"] == pytest.approx(5.0 / 8.0, abs=1e-12)
    # constant latents are dropped; all constant gives 0
    z3 = np.hstack([z, np.full((4, 1), 7.0)])
    assert irs(z3, v, quantile=1.0)["irs"] == pytest.approx(5.0 / 8.0, abs=1e-12)
    assert irs(np.ones((4, 2)), v)["irs"] == 0.0


def test_irs_codes_equal_factors_and_factor_binning():
    rng = np.random.default_rng(9)
    f = np.stack([rng.integers(0, s, 5000) for s in (3, 6, 20)], 1)
    assert irs(f.astype(float), f)["irs"] == pytest.approx(1.0, abs=1e-12)
    # factors with S > 20 classes 0..S-1 fall in 20 equal-width bins:
    # class v goes to bin floor(20 v / (S - 1)), the last class to bin 19;
    # for the 40-class factor that merges classes 2m and 2m+1
    z, g = dsprites_like(10, 4000)
    manual = g.copy()
    for k, s in enumerate(SIZES):
        if s > 20:
            manual[:, k] = np.minimum(g[:, k] * 20 // (s - 1), 19)
    assert np.array_equal(manual[:, 2], g[:, 2] // 2)
    assert irs(z, g)["irs"] == pytest.approx(irs(z, manual, factor_bins=None)["irs"], abs=1e-12)


def test_irs_invariances():
    z, g = dsprites_like(11, 3000)
    base = irs(z, g)["irs"]
    perm = np.random.default_rng(2).permutation(10)
    assert irs(z[:, perm], g)["irs"] == pytest.approx(base, abs=1e-12)
    assert irs(z * 8.0 - 2.0, g)["irs"] == pytest.approx(base, abs=1e-12)


def test_irs_bad_input():
    z, f = dsprites_like(12, 50)
    with pytest.raises(UntwineError, match="quantile"):
        irs(z, f, quantile=1.5)
    with pytest.raises(UntwineError, match="non-integer"):
        irs(z, f + 0.5)


# ---------------------------------------------------------------- unsupervised


def with_exact_covariance(cov, n, seed):
    """Samples whose sample covariance (ddof=1) equals ``cov`` up to rounding."""
    x = np.random.default_rng(seed).normal(size=(n, cov.shape[0]))
    x -= x.mean(axis=0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)
    return x @ np.linalg.cholesky(cov).T + 3.0


def test_gaussian_scores_closed_form():
    rho = 0.6
    cov = np.array([[1.0, rho], [rho, 1.0]])
    assert gaussian_total_correlation(cov) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=1e-14)
    expected_w = 4.0 - 2.0 * (np.sqrt(1 + rho) + np.sqrt(1 - rho))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(expected_w, abs=1e-14)
    assert gaussian_total_correlation(np.diag([1.0, 4.0, 9.0])) == pytest.approx(0.0, abs=1e-14)
    assert gaussian_wasserstein_correlation(np.diag([1.0, 4.0, 9.0])) == pytest.approx(0.0, abs=1e-12)


def test_unsupervised_on_samples():
    rho = 0.8
    scale = np.array([2.0, 0.5])
    cov = np.array([[1.0, rho], [rho, 1.0]]) * np.outer(scale, scale)
    z = with_exact_covariance(cov, 5000, 0)
    got = unsupervised(z)
    assert got["gaussian_total_correlation"] == pytest.approx(-0.5 * np.log(1 - rho**2), abs=1e-9)
    # W2^2 between N(0, cov) and N(0, diag(cov)) by scipy's matrix square root
    from scipy.linalg import sqrtm

    w = 2 * np.trace(cov) - 2 * np.trace(np.real(sqrtm(cov * np.diag(cov)[:, None])))
    assert got["gaussian_wasserstein_correlation"] == pytest.approx(w, abs=1e-9)
    assert got["gaussian_wasserstein_correlation_norm"] == pytest.approx(w / np.trace(cov), abs=1e-9)
    independent = unsupervised(np.random.default_rng(1).normal(size=(10000, 4)))
    assert independent["gaussian_total_correlation"] < 0.005
    assert independent["gaussian_wasserstein_correlation_norm"] < 0.005


def test_unsupervised_mutual_info_known_and_invariances():
    a = np.arange(2000) % 20
    got = unsupervised(np.stack([a, a], 1).astype(float))
    assert got["mutual_info_score"] == pytest.approx(np.log(20), abs=1e-12)
    z, _ = dsprites_like(13, 3000)
    base = unsupervised(z)
    moved = unsupervised(z[:, ::-1] * 4.0)
    for key in ("gaussian_total_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score"):
        assert moved[key] == pytest.approx(base[key], abs=1e-9)
    assert moved["gaussian_wasserstein_correlation"] == pytest.approx(16.0 * base["gaussian_wasserstein_correlation"], rel=1e-9)


def test_unsupervised_constant_dim_and_bad_input():
    z = np.random.default_rng(14).normal(size=(500, 3))
    with_const = np.hstack([z, np.full((500, 1), 2.0)])
    a, b = unsupervised(z), unsupervised(with_const)
    assert b["gaussian_total_correlation"] == pytest.approx(a["gaussian_total_correlation"], abs=1e-12)
    assert np.isfinite(list(b.values())).all()
    with pytest.raises(UntwineError, match="at least 2 code dimensions"):
        unsupervised(z[:, :1])
    z[0, 0] = np.nan
    with pytest.raises(UntwineError, match="non-finite"):
        unsupervised(z)
