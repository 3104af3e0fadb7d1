"""Tests of untwine.metrics.infomec (InfoM, InfoE, InfoC of Hsu et al. 2023)."""

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.metrics.infomec import infomec, knn_mutual_info, nmi_matrix

SIZES = (3, 5, 8)


def _factors(n, rng):
    return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)


def _aligned(f, rng):
    return (f + rng.random(f.shape)) / np.array(SIZES)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    f = _factors(2000, rng)
    return f, _aligned(f, rng), rng.standard_normal((2000, 4))


def test_aligned_codes_score_near_one(data):
    f, z, _ = data
    s = infomec(z, f)
    assert s["infom"] > 0.9 and s["infoc"] > 0.9
    assert all(isinstance(v, float) for v in s.values())


def test_codes_equal_to_factors_are_explicit(data):
    f, _, _ = data
    s = infomec(f.astype(float), f)
    assert s["infoe"] > 0.97
    sd = infomec(f.astype(float), f, discrete_latents=True)
    assert sd["infom"] > 0.99 and sd["infoc"] > 0.99 and sd["infoe"] > 0.99


def test_noise_scores_near_zero(data):
    f, _, noise = data
    s = infomec(noise, f)
    assert s["infoe"] < 0.02
    # with no information the NMI of noise is tiny; InfoM/InfoC are ratios of it and
    # must stay far below the aligned codes
    nmi = nmi_matrix(noise, f)
    assert nmi.max() < 0.02


def test_mixed_codes_have_low_modularity(data):
    f, z, _ = data
    A = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5], [0.5, 1.0, -1.0]])
    s = infomec(z @ A, f)
    assert s["infom"] < 0.6


def test_permuting_latents_changes_nothing(data):
    f, z, _ = data
    z = np.concatenate([z, 0.3 * data[2][:, :1]], axis=1)
    perm = [2, 0, 3, 1]
    a, b = infomec(z, f), infomec(z[:, perm], f)
    for k in a:
        # InfoE's classifier evaluates its softmax in float32: the column order moves it by ~1e-7
        assert a[k] == pytest.approx(b[k], abs=1e-5 if k == "infoe" else 1e-9)
    np.testing.assert_allclose(nmi_matrix(z, f)[:, perm], nmi_matrix(z[:, perm], f), atol=1e-12)


def test_relabelling_factor_classes_changes_nothing(data):
    f, z, _ = data
    g = f.copy()
    g[:, 1] = (7 - f[:, 1]) * 3  # classes 21, 18, ..., 9
    a, b = infomec(z, f), infomec(z, g)
    for k in a:
        # InfoE's unpenalised classifier stops at 100 iterations on these separable classes, its
        # float32 softmax summed in another class order: it moves by ~1e-6 (scikit-learn's by ~1e-7)
        assert a[k] == pytest.approx(b[k], abs=1e-5 if k == "infoe" else 1e-9)


def test_inactive_latent_is_pruned(data):
    f, z, _ = data
    small = np.concatenate([z, 1e-3 * z[:, :1] + 1e-3 * z[:, 1:2]], axis=1)  # tiny range, mixes 2 factors
    a, b = infomec(z, f), infomec(small, f)
    assert a["infom"] == pytest.approx(b["infom"], abs=1e-9)
    assert a["infoc"] == pytest.approx(b["infoc"], abs=1e-9)


def test_zero_mi_latent_gives_no_nan(data):
    f, z, _ = data
    # a binary latent independent of every factor: its plug-in MI is exactly 0
    # when it is balanced within every factor class
    n = f.shape[0]
    zero = np.zeros(n)
    order = np.lexsort(f.T[::-1])
    zero[order[::2]] = 1.0
    codes = np.concatenate([z, zero[:, None]], axis=1)
    nmi = nmi_matrix(codes, f, discrete_latents=True)
    s = infomec(np.floor(codes * 4), f, discrete_latents=True)
    s2 = infomec(np.concatenate([z, np.zeros((n, 1)) + 5.0], axis=1), f)  # constant latent
    for v in list(s.values()) + list(s2.values()):
        assert np.isfinite(v)
    assert np.all(np.isfinite(nmi))


def test_all_zero_information_is_finite():
    rng = np.random.default_rng(3)
    f = _factors(500, rng)
    s = infomec(np.ones((500, 3)), f)
    assert s == {"infom": 0.0, "infoe": pytest.approx(0.0, abs=1e-6), "infoc": 0.0}


def test_one_factor_infom_and_one_active_latent_infoc_are_undefined(data):
    """InfoM with a single factor and InfoC with a single active latent rescale 0 by 0: NaN
    with a warning, never the uninformative conventional 1.0; the other scores stay defined."""
    from untwine.metrics._undefined import UndefinedScoreWarning

    f, z, _ = data
    with pytest.warns(UndefinedScoreWarning, match="infom is undefined with a single factor"):
        s = infomec(z, f[:, :1])
    assert np.isnan(s["infom"]) and s["infoc"] > 0.5 and s["infoe"] > 0.5
    one = np.concatenate([z[:, :1], 1e-4 * z[:, 1:]], axis=1)  # one active latent among three
    with pytest.warns(UndefinedScoreWarning, match="infoc is undefined with a single"):
        s = infomec(one, f)
    assert np.isnan(s["infoc"]) and 0.0 <= s["infom"] <= 1.0


def test_seeded_runs_repeat_exactly(data):
    f, z, _ = data
    assert infomec(z, f, seed=5) == infomec(z, f, seed=5)


def test_knn_mi_matches_sklearn():
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 700)
    x = y + rng.standard_normal(700)
    ref = mutual_info_classif(x[:, None], y, n_neighbors=10, random_state=0)[0]
    assert knn_mutual_info(x, y, 10) == pytest.approx(ref, abs=1e-6)
    assert knn_mutual_info(x, y, 3) == pytest.approx(
        mutual_info_classif(x[:, None], y, n_neighbors=3, random_state=0)[0], abs=1e-6
    )


def test_bad_input_raises():
    rng = np.random.default_rng(2)
    f = _factors(100, rng)
    z = rng.standard_normal((100, 3))
    with pytest.raises(UntwineError):
        infomec(z[:50], f)
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(UntwineError):
        infomec(bad, f)
    with pytest.raises(UntwineError):
        infomec(z, np.zeros((100, 2)))
    with pytest.raises(UntwineError):
        infomec(z, f, n_neighbors=0)


def test_knn_mutual_info_matrix_equals_one_pair_at_a_time():
    # every factor of a latent at once (ties, a value seen once, fewer points than neighbours in a class)
    from untwine.metrics.infomec import knn_mutual_info_matrix

    rng = np.random.default_rng(5)
    for n, d, k, nn in [(200, 4, 3, 10), (60, 3, 4, 3), (25, 2, 2, 12)]:
        z = rng.standard_normal((n, d))
        z[:, 0] = np.round(z[:, 0] * 2)  # ties
        f = rng.integers(0, 4, (n, k))
        f[:, 0] = z[:, 1] > 0
        f[0, -1] = 9  # a value seen once: that factor leaves the point out
        ref = np.array([[knn_mutual_info(z[:, j], f[:, c], nn) for j in range(d)] for c in range(k)])
        np.testing.assert_allclose(knn_mutual_info_matrix(z, f, nn), ref, rtol=0, atol=1e-12)
