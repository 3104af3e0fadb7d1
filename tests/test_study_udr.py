"""UDR (Duan et al. 2020): known answers and invariances of the pure function."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from untwine.errors import UntwineError
from untwine.study.udr import similarity_matrix, udr_from_matrix, udr_pairwise, udr_scores


def _sources(n=600, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _grid(d=3, values=8, seed=0):
    """Independent factors on a full grid (every combination once): exactly zero rank correlation,
    like the ground-truth factors of dSprites; each model's latents are a shuffled copy of the rows."""
    g = np.stack(np.meshgrid(*[np.arange(values)] * d, indexing="ij"), -1).reshape(-1, d).astype(float)
    return g[np.random.default_rng(seed).permutation(len(g))]


def test_identical_up_to_permutation_sign_and_monotone_map_scores_one():
    z = _grid(d=4)
    rng = np.random.default_rng(1)
    reps = [z]
    for _ in range(2):
        perm = rng.permutation(z.shape[1])
        sign = rng.choice([-1.0, 1.0], size=z.shape[1])
        reps.append(np.tanh(z[:, perm] * sign) * 3.0 + 1.0)  # Spearman sees through monotone maps
    s = udr_scores(reps)
    np.testing.assert_allclose(s, 1.0, atol=1e-12)


def test_independent_random_representations_score_low():
    reps = [_sources(seed=s) for s in range(4)]
    s = udr_scores(reps)
    assert s.shape == (4,)
    assert np.all(s < 0.15)


def test_mixed_latents_score_between_and_are_ranked_below_clean_ones():
    z = _grid(d=4, values=6)
    rot = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))[0]
    mixed = z @ rot
    clean_pair = udr_pairwise([z, z[:, ::-1]])[0, 1]
    mixed_pair = udr_pairwise([z, mixed])[0, 1]
    assert clean_pair == pytest.approx(1.0)
    assert 0.2 < mixed_pair < 0.8
    # three seeds that agree and one that mixes: the mixer gets the lowest score
    s = udr_scores([z, z[:, [1, 0, 3, 2]], -z, mixed])
    assert np.argmin(s) == 3
    assert s[0] == pytest.approx(1.0)  # median over {1, 1, mixed}


def test_uninformative_latents_are_filtered_by_kl():
    z = _grid(d=3)
    rng = np.random.default_rng(5)
    a = np.concatenate([z, rng.normal(size=(z.shape[0], 2))], axis=1)  # 2 collapsed latents (noise)
    b = np.concatenate([rng.normal(size=(z.shape[0], 3)), z[:, [2, 0, 1]]], axis=1)  # 3 noise latents first
    kl_a = np.array([1.0, 2.0, 0.5, 0.001, 0.0])
    kl_b = np.array([0.0, 0.005, 0.002, 1.0, 1.5, 0.7])
    np.testing.assert_allclose(udr_scores([a, b], [kl_a, kl_b]), 1.0, atol=1e-12)
    # without the KL filter the noise latents pull the score down
    assert udr_scores([a, b]).max() < 0.9
    # a model without informative latents scores 0
    assert udr_pairwise([a, b], [np.zeros(5), kl_b])[0, 1] == 0.0


def test_formula_known_answer_and_paper_weighting():
    # hand computation: columns (max^2/sum): 0.81/1.0=0.81, 0.64/0.8=0.8 ; rows: 0.81/0.9=0.9, 0.64/0.9=0.7111
    R = np.array([[0.9, 0.0], [0.1, 0.8]])
    expected = (0.81 + 0.8 + 0.9 + 0.64 / 0.9) / 4
    assert udr_from_matrix(R) == pytest.approx(expected)
    # different numbers of latents: weights d_b (columns) and d_a (rows) as in the paper
    R = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])  # 2 x 3
    cols = 1.0 + 1.0 + 0.25 / 1.0
    rows = 1.0 / 1.5 + 1.0 / 1.5
    assert udr_from_matrix(R) == pytest.approx((cols + rows) / 5)
    # a zero column contributes 0, not NaN
    assert udr_from_matrix(np.array([[1.0, 0.0], [0.0, 0.0]])) == pytest.approx(2 / 4)


def test_spearman_similarity_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 2))
    b[:, 0] += a[:, 1]
    R = similarity_matrix(a, b)
    for i in range(3):
        for j in range(2):
            assert R[i, j] == pytest.approx(abs(spearmanr(a[:, i], b[:, j]).statistic), abs=1e-12)


def test_lasso_variant():
    z = _grid(d=4, values=6)
    s = udr_scores([z, -z[:, [3, 2, 1, 0]]], correlation="lasso")
    # standardised Lasso with alpha 0.1 shrinks each matched coefficient to 0.9
    np.testing.assert_allclose(s, 0.9, atol=0.01)
    rnd = udr_scores([_sources(seed=1), _sources(seed=2)], correlation="lasso")
    assert np.all(rnd < 0.1)


def test_constant_latent_is_not_a_nan():
    z = _grid(d=3)
    a = z.copy()
    a[:, 2] = 0.0  # a dead latent of a deterministic encoder (no KL given)
    s = udr_scores([a, z])
    assert np.all(np.isfinite(s))
    assert s[0] == pytest.approx((1 + 1 + 0 + 1 + 1 + 0) / 6)


def test_bad_inputs_are_one_line_errors():
    z = _sources()
    with pytest.raises(UntwineError, match="at least 2"):
        udr_scores([z])
    with pytest.raises(UntwineError, match="same inputs"):
        udr_scores([z, z[:100]])
    with pytest.raises(UntwineError, match="KL values"):
        udr_scores([z, z], [np.ones(3), np.ones(5)])
    with pytest.raises(UntwineError, match="correlation"):
        udr_scores([z, z], correlation="pearson")
    with pytest.raises(UntwineError, match="non-finite"):
        udr_scores([z, np.full_like(z, np.nan)])
