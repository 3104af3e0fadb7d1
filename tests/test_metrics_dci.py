"""Tests of untwine.metrics.dci (Eastwood & Williams 2018, disentanglement_lib's DCI)."""

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.metrics.dci import completeness, dci, disentanglement, importance_matrix

SIZES = (3, 4, 5)


def _factors(n, rng):
    return np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    ftr, fte = _factors(600, rng), _factors(300, rng)
    return ftr, fte, rng


def test_codes_equal_to_factors(split):
    ftr, fte, _ = split
    s = dci(ftr.astype(float), ftr, fte.astype(float), fte)
    assert s["dci_disentanglement"] > 0.95 and s["dci_completeness"] > 0.95
    assert s["dci_informativeness_train"] == pytest.approx(1.0)
    assert s["dci_informativeness_test"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in s.values())


def test_mixing_code_has_low_disentanglement(split):
    ftr, fte, rng = split
    A = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
    ztr = (ftr + rng.random(ftr.shape)) @ A
    zte = (fte + rng.random(fte.shape)) @ A
    aligned = dci(ftr + rng.random(ftr.shape), ftr, fte + rng.random(fte.shape), fte)
    mixed = dci(ztr, ftr, zte, fte)
    assert mixed["dci_disentanglement"] < 0.5 < aligned["dci_disentanglement"]


def test_permuting_latents_changes_nothing(split):
    ftr, fte, rng = split
    ztr = np.concatenate([ftr + 0.5 * rng.standard_normal(ftr.shape), rng.standard_normal((600, 1))], 1)
    zte = np.concatenate([fte + 0.5 * rng.standard_normal(fte.shape), rng.standard_normal((300, 1))], 1)
    perm = [3, 1, 0, 2]
    a = dci(ztr, ftr, zte, fte)
    b = dci(ztr[:, perm], ftr, zte[:, perm], fte)
    # boosting breaks exact ties between equally good splits by column order
    # (as scikit-learn does by its seeded feature order), so allow a small change
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=0.02)


def test_scores_of_known_importance_matrices():
    assert disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-6)
    assert completeness(np.eye(3)) == pytest.approx(1.0, abs=1e-6)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-6)
    assert completeness(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-6)
    # one code importing to all factors equally: D = 0 but C = 1
    R = np.zeros((3, 3))
    R[0] = 1.0
    assert disentanglement(R) == pytest.approx(0.0, abs=1e-6)
    assert completeness(R) == pytest.approx(1.0, abs=1e-6)


def test_one_factor_disentanglement_and_one_code_completeness_are_undefined(split):
    """Entropy in base 1: disentanglement of a single factor (completeness of a single code) is
    NaN with a warning naming the score, never the uninformative conventional 1.0."""
    from untwine.metrics._undefined import UndefinedScoreWarning

    with pytest.warns(UndefinedScoreWarning, match="dci_disentanglement is undefined with a single factor"):
        assert np.isnan(disentanglement(np.array([[0.7], [0.3]])))
    with pytest.warns(UndefinedScoreWarning, match="dci_completeness is undefined with a single"):
        assert np.isnan(completeness(np.array([[0.2, 0.8]])))
    ftr, fte, rng = split
    ztr, zte = ftr + rng.random(ftr.shape), fte + rng.random(fte.shape)
    with pytest.warns(UndefinedScoreWarning, match="dci_disentanglement"):
        s = dci(ztr, ftr[:, :1], zte, fte[:, :1])
    assert np.isnan(s["dci_disentanglement"])
    # completeness over several codes is defined for one factor: the aligned code carries it
    assert s["dci_completeness"] > 0.5 and s["dci_informativeness_test"] > 0.9


def test_seeded_runs_repeat_exactly(split):
    ftr, fte, rng = split
    ztr, zte = ftr + rng.random(ftr.shape), fte + rng.random(fte.shape)
    assert dci(ztr, ftr, zte, fte, seed=3) == dci(ztr, ftr, zte, fte, seed=3)


def test_fast_importances_match_sklearn_gbt():
    """The fast estimator's importances and accuracies track scikit-learn's GBT (dlib's estimator)."""
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(4)
    f = np.stack([rng.integers(0, 4, 300), rng.integers(0, 2, 300)], 1)
    z = np.round(f + 0.8 * rng.standard_normal((300, 2)), 1)  # about 50 distinct values per column
    R, acc_tr, _ = importance_matrix(z, f, z, f)
    for k in range(2):
        m = GradientBoostingClassifier(random_state=0).fit(z, f[:, k])
        np.testing.assert_allclose(R[:, k], m.feature_importances_, atol=0.03)  # 300 points, 2 codes
        assert acc_tr[k] == pytest.approx(m.score(z, f[:, k]), abs=0.05)


def test_fast_agrees_with_gbt_on_small_input():
    rng = np.random.default_rng(5)
    sizes = (3, 6, 8)
    ftr = np.stack([rng.integers(0, s, 1000) for s in sizes], 1)
    fte = np.stack([rng.integers(0, s, 500) for s in sizes], 1)
    A = np.eye(3, 5) + 0.3 * rng.standard_normal((3, 5))

    def enc(f):
        u = (f + rng.random(f.shape)) / np.array(sizes)
        return np.tanh(2 * u) @ A + 0.05 * rng.standard_normal((len(f), 5))

    ztr, zte = enc(ftr), enc(fte)
    fast = dci(ztr, ftr, zte, fte, estimator="fast")
    gbt = dci(ztr, ftr, zte, fte, estimator="gbt")
    for k in fast:
        assert fast[k] == pytest.approx(gbt[k], abs=0.05), k


def test_bad_input_raises(split):
    ftr, fte, rng = split
    z = rng.standard_normal((600, 3))
    zt = rng.standard_normal((300, 3))
    with pytest.raises(UntwineError):
        dci(z[:10], ftr, zt, fte)
    with pytest.raises(UntwineError):
        dci(z, ftr, zt[:, :2], fte)
    with pytest.raises(UntwineError):
        dci(z, ftr, zt, fte, estimator="xgboost")
    bad = z.copy()
    bad[0, 0] = np.inf
    with pytest.raises(UntwineError):
        dci(bad, ftr, zt, fte)
    with pytest.raises(UntwineError):
        dci(z, ftr + 0.5, zt, fte)


def test_tied_code_groups():
    from untwine.metrics.dci import tied_code_groups

    rng = np.random.default_rng(8)
    u = rng.random((50, 2))
    z = np.column_stack([u[:, 0], u[:, 1], 3 * u[:, 0] + 1, np.tanh(-u[:, 1]), u[:, 0] + 1e-3 * rng.random(50)])
    groups = [g.tolist() for g in tied_code_groups(z)]
    assert groups == [[0, 2], [1, 3], [4]]
    # within a rank tolerance the near-copy joins its code's group
    assert [g.tolist() for g in tied_code_groups(z, tolerance=0.1)] == [[0, 2, 4], [1, 3]]
    assert [g.tolist() for g in tied_code_groups(rng.random((40, 3)), tolerance=0.01)] == [[0], [1], [2]]


def test_fast_agrees_with_gbt_on_redundant_codes():
    """Several codes carrying one factor (copies, a monotone transform, a noisy copy): the fast
    estimator shares tied codes' importance as GBT does in expectation, within 0.05 of it."""
    rng = np.random.default_rng(6)
    sizes = (3, 6, 8)
    ftr = np.stack([rng.integers(0, s, 800) for s in sizes], 1)
    fte = np.stack([rng.integers(0, s, 400) for s in sizes], 1)

    def enc(f):
        u = (f + rng.random(f.shape)) / np.array(sizes) - 0.5
        return np.column_stack([u, u[:, 0], np.tanh(2 * u[:, 1]), u[:, 1] + 0.02 * rng.standard_normal(len(f))])

    ztr, zte = enc(ftr), enc(fte)
    R, _, _ = importance_matrix(ztr, ftr, zte, fte)
    assert R[0, 0] == pytest.approx(R[3, 0])  # exact copies share their factor's importance
    fast = dci(ztr, ftr, zte, fte, estimator="fast")
    gbt = dci(ztr, ftr, zte, fte, estimator="gbt")
    for k in fast:
        assert fast[k] == pytest.approx(gbt[k], abs=0.05), (k, fast[k], gbt[k])


def test_numpy_ranks_and_entropy_equal_scipy():
    """DCI's numpy average ranks and entropy score (no scipy.stats import at start-up) are
    scipy's exactly, ties included."""
    import scipy.stats

    from untwine.metrics.dci import _average_ranks, _entropy_score

    rng = np.random.default_rng(1)
    for a in (rng.random((300, 4)), np.round(rng.random((300, 4)) * 5), np.repeat([[0.0], [1.0]], 3, axis=0)):
        assert np.array_equal(_average_ranks(a), scipy.stats.rankdata(a, axis=0))
    R = rng.random((10, 5))
    assert np.allclose(_entropy_score(R, 10), 1.0 - scipy.stats.entropy(R + 1e-11, base=10), rtol=0, atol=1e-15)


def test_the_same_fit_asked_twice_is_reused_inside_remember_importance(split, monkeypatch):
    # sae evaluate asks for the suite's importance matrix again for its heatmap: no second fit
    import importlib

    dci_module = importlib.import_module("untwine.metrics.dci")  # untwine.metrics.dci is also the function
    ftr, fte, rng = split
    ctr, cte = rng.standard_normal((600, 4)), rng.standard_normal((300, 4))
    fits = []
    real = dci_module._importance_matrix
    monkeypatch.setattr(dci_module, "_importance_matrix", lambda *a: fits.append(a[5]) or real(*a))
    with dci_module.remember_importance():
        first = importance_matrix(ctr, ftr, cte, fte, seed=11)
        first[0][:] = -1  # the caller's copy: changing it changes nothing kept
        with dci_module.remember_importance():  # nested: the same memory
            again = importance_matrix(ctr.copy(), ftr, cte, fte, seed=11)
        other = importance_matrix(ctr, ftr, cte, fte, seed=12)  # another seed: fitted
    assert fits == [11, 12]
    assert np.all(again[0] >= 0) and np.isclose(again[0].sum(), 3.0)
    outside = importance_matrix(ctr, ftr, cte, fte, seed=11)  # forgotten at the context's exit: fitted again
    assert fits == [11, 12, 11] and dci_module._remembered is None
    for a, b in zip(again, outside):
        np.testing.assert_array_equal(a, b)
    assert other[0].shape == again[0].shape


def test_tied_code_groups_of_sparse_codes_equal_the_pairwise_definition():
    # sparse codes tie at zero on most points (the screens must not lose or invent a pair):
    # groups are the connected components of pairs whose ranks agree within the tolerance
    from scipy.stats import rankdata

    from untwine.metrics.dci import tied_code_groups

    rng = np.random.default_rng(9)
    n, d = 400, 30
    z = rng.random((n, d)) * (rng.random((n, d)) < 0.03)
    z[:, 1] = 2 * z[:, 0]
    z[:, 2] = -z[:, 0]
    z[:, 5] = z[:, 4] + 1e-9 * rng.random(n) * (z[:, 4] > 0)
    for tolerance in (0.0, 1 / 255, 0.02):
        r = rankdata(z, axis=0)
        limit = tolerance * n + 1e-9
        label = list(range(d))
        for a in range(d):
            for b in range(a + 1, d):
                if min(np.abs(r[:, a] - r[:, b]).max(), np.abs(r[:, a] - (n + 1 - r[:, b])).max()) <= limit:
                    old, new = label[b], label[a]
                    label = [new if x == old else x for x in label]
        expected = {}
        for j, g in enumerate(label):
            expected.setdefault(g, []).append(j)
        assert [g.tolist() for g in tied_code_groups(z, tolerance)] == list(expected.values())
