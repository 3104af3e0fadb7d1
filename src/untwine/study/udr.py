"""UDR: unsupervised model selection across the seeds of one configuration.

Reference: Duan, Matthey, Saraiva, Watters, Burgess, Lerchner, Higgins (2020),
"Unsupervised Model Selection for Variational Disentangled Representation
Learning", ICLR (arXiv:1905.12614); disentanglement_lib function
``evaluation.udr.metrics.udr.compute_udr_sklearn``.

The idea: a disentangled representation is found again (up to permutation and
sign of its latents) by every seed of a configuration, an entangled one is not.
For two models ``a`` and ``b`` encoding the same ``N`` inputs, a similarity
matrix ``R[i, j]`` between latent ``i`` of ``a`` and latent ``j`` of ``b`` is

* ``"spearman"`` (the paper's UDR_S, the default here): the absolute Spearman
  rank correlation of the two latents' mean representations;
* ``"lasso"`` (UDR_L): the absolute coefficients of a Lasso regression
  (``alpha=0.1``) predicting ``b``'s standardised latents from ``a``'s.

Only *informative* latents enter: those whose average KL divergence from the
prior exceeds ``kl_threshold`` (0.01).  With ``d_a``, ``d_b`` informative latents,

    UDR_ab = 1 / (d_a + d_b) * [ sum_j max_i R[i,j]^2 / sum_i R[i,j]
                                + sum_i max_j R[i,j]^2 / sum_j R[i,j] ]

(a column or row of zeros contributes 0).  Each term is 1 for a one-to-one
match of latents, so identical models up to permutation and sign score 1, and
models whose latents each mix several of the other's score less.  A model's
UDR is the median of ``UDR_ab`` over all other models ``b`` of its
configuration.

Defaults and deviations, documented: disentanglement_lib averages the column
term and the row term with equal weight (``(mean_j + mean_i) / 2``); the
paper, followed here, weights them by ``d_b`` and ``d_a`` -- identical when
both models have the same number of informative latents.  A model with no
informative latent scores 0 against every other.  Without KL values
(deterministic encoders) every latent counts as informative; constant latents
correlate with nothing (R = 0).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from untwine._checks import as_codes
from untwine.errors import UntwineError

CORRELATIONS = ("spearman", "lasso")
KL_THRESHOLD = 0.01
LASSO_ALPHA = 0.1


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    out = x - x.mean(axis=0)
    nz = sd > 1e-12
    out[:, nz] /= sd[nz]
    out[:, ~nz] = 0.0
    return out


def similarity_matrix(a, b, correlation: str = "spearman", *, seed: int = 0) -> np.ndarray:
    """``R[i, j]`` in [0, 1]-ish between latent ``i`` of codes ``a`` [N, Da] and latent ``j`` of ``b`` [N, Db]."""
    if correlation not in CORRELATIONS:
        raise UntwineError(f"UDR correlation must be one of {', '.join(CORRELATIONS)}, got {correlation!r}")
    a = as_codes(a, "representation a")
    b = as_codes(b, "representation b")
    if a.shape[0] != b.shape[0]:
        raise UntwineError(f"UDR: the two representations encode {a.shape[0]} and {b.shape[0]} inputs; they must encode the same inputs")
    if a.shape[0] < 3:
        raise UntwineError(f"UDR needs at least 3 inputs, got {a.shape[0]}")
    if correlation == "spearman":
        ra = _standardise(rankdata(a, axis=0))
        rb = _standardise(rankdata(b, axis=0))
        return np.abs(ra.T @ rb) / a.shape[0]
    from sklearn.linear_model import Lasso

    za, zb = _standardise(a.copy()), _standardise(b.copy())
    model = Lasso(alpha=LASSO_ALPHA, random_state=int(seed))
    model.fit(za, zb)
    coef = np.asarray(model.coef_).reshape(zb.shape[1], za.shape[1])  # [Db, Da]
    return np.abs(coef.T)


def _informative(kl, d: int, threshold: float, name: str) -> np.ndarray:
    if kl is None:
        return np.ones(d, dtype=bool)
    k = np.asarray(kl, dtype=np.float64).reshape(-1)
    if k.shape[0] != d:
        raise UntwineError(f"UDR: {name} has {k.shape[0]} KL values for {d} latents")
    if not np.all(np.isfinite(k)):
        raise UntwineError(f"UDR: {name} holds non-finite KL values")
    return k > threshold


def udr_from_matrix(R: np.ndarray) -> float:
    """The paper's UDR_ab of a similarity matrix already restricted to informative latents."""
    R = np.asarray(R, dtype=np.float64)
    d_a, d_b = R.shape
    if d_a == 0 or d_b == 0:
        return 0.0
    R = np.nan_to_num(np.abs(R), nan=0.0)

    def term(axis: int) -> float:
        s = R.sum(axis=axis)
        m = R.max(axis=axis)
        ratio = np.divide(m**2, s, out=np.zeros_like(s), where=s > 0)
        return float(ratio.sum())

    return (term(0) + term(1)) / (d_a + d_b)


def udr_pairwise(
    representations: Sequence,
    kl: Sequence | None = None,
    *,
    correlation: str = "spearman",
    kl_threshold: float = KL_THRESHOLD,
    seed: int = 0,
) -> np.ndarray:
    """The ``[M, M]`` matrix of ``UDR_ab`` between models (diagonal NaN); see the module docstring."""
    reps = [as_codes(r, f"representation {i}") for i, r in enumerate(representations)]
    if len(reps) < 2:
        raise UntwineError(f"UDR compares models across seeds: needs at least 2 representations, got {len(reps)}")
    if kl is not None and len(kl) != len(reps):
        raise UntwineError(f"UDR: {len(kl)} KL vectors for {len(reps)} representations")
    n = reps[0].shape[0]
    for i, r in enumerate(reps):
        if r.shape[0] != n:
            raise UntwineError(f"UDR: representation {i} encodes {r.shape[0]} inputs, representation 0 encodes {n}; encode the same inputs")
    masks = [
        _informative(None if kl is None else kl[i], r.shape[1], kl_threshold, f"representation {i}") for i, r in enumerate(reps)
    ]
    m = len(reps)
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            if correlation == "spearman" and j < i:
                out[i, j] = out[j, i]  # symmetric
                continue
            a, b = reps[i][:, masks[i]], reps[j][:, masks[j]]
            if a.shape[1] == 0 or b.shape[1] == 0:
                out[i, j] = 0.0
                continue
            out[i, j] = udr_from_matrix(similarity_matrix(a, b, correlation, seed=seed))
    return out


def udr_scores(
    representations: Sequence,
    kl: Sequence | None = None,
    *,
    correlation: str = "spearman",
    kl_threshold: float = KL_THRESHOLD,
    seed: int = 0,
) -> np.ndarray:
    """Per-model UDR: the median over the other models of ``UDR_ab`` (float64 array ``[M]``).

    ``representations``: one ``[N, D_m]`` array of mean representations per model
    (the same ``N`` inputs, in the same order, for every model); ``kl``: one ``[D_m]``
    array of average per-latent KL divergences per model, or None (all latents
    informative).  See the module docstring for the definition.
    """
    pair = udr_pairwise(representations, kl, correlation=correlation, kl_threshold=kl_threshold, seed=seed)
    m = pair.shape[0]
    return np.array([float(np.median(np.delete(pair[i], i))) for i in range(m)])
