"""Unsupervised scores of a representation (no factors needed).

Reference: disentanglement_lib ``evaluation/metrics/unsupervised_metrics.py``
(``unsupervised_metrics``, ``gaussian_total_correlation``,
``gaussian_wasserstein_correlation``), as used by Locatello et al.,
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations", ICML 2019.

Definitions (as in disentanglement_lib), with ``S`` the sample covariance of
the codes (``ddof=1``):

* ``gaussian_total_correlation``: KL divergence between ``N(0, S)`` and the
  product of its marginals, ``0.5 * (sum_j log S_jj - log det S)``.
* ``gaussian_wasserstein_correlation``: squared 2-Wasserstein distance
  between ``N(0, S)`` and ``N(0, diag(S))``, ``2 tr S - 2 tr sqrt(diag(S) S)``
  (the trace of the square root is the sum of the square roots of the
  eigenvalues of the symmetric ``diag(S)^1/2 S diag(S)^1/2``).
* ``gaussian_wasserstein_correlation_norm``: the above divided by ``tr S``.
* ``mutual_info_score``: mean over ordered pairs of distinct code dimensions
  of the plug-in mutual information (nats) of the codes discretised into
  ``num_bins`` equal-width histogram bins.

Defaults (disentanglement_lib ``unsupervised_study_v1``): 10000 training
points, ``num_bins=20``.  Requires at least two code dimensions.  Constant
code dimensions are left out of the three Gaussian scores (they carry no
dependence; disentanglement_lib returns NaN there).

The Gaussian total correlation is undefined when the covariance of the varying code
dimensions is singular (no more samples than dimensions, or dimensions that are exact
linear combinations of others): ``log det S`` is minus infinity, and a finite number
computed from rounding errors would look like a (huge) score.  It is then NaN, with a
:class:`~untwine.errors.UntwineWarning` that says why (JSON files write it as ``null``
and list it under ``_undefined``).
"""

from __future__ import annotations

import warnings

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError, UntwineWarning
from untwine.metrics._info import histogram_discretize, mutual_info_matrix, native_float

__all__ = [
    "unsupervised",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
]


def singular_reason(cov, num_samples: int | None = None) -> str | None:
    """Why the covariance ``cov`` is singular (None when it is not): too few samples, or a
    numerically rank-deficient correlation matrix."""
    cov = np.asarray(cov, dtype=np.float64)
    d = cov.shape[0]
    if num_samples is not None and num_samples <= d:
        return f"{num_samples} samples for {d} varying code dimensions (need more samples than dimensions)"
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    rank = np.linalg.matrix_rank(corr, hermitian=True)
    if rank < d:
        return f"the covariance of the {d} varying code dimensions has rank {rank} (some are linear combinations of others)"
    return None


def gaussian_total_correlation(cov, num_samples: int | None = None) -> float:
    """Total correlation of a zero-mean Gaussian with covariance ``cov``; NaN (with an
    :class:`~untwine.errors.UntwineWarning`) when ``cov`` is singular, where it is undefined."""
    cov = np.asarray(cov, dtype=np.float64)
    why = singular_reason(cov, num_samples)
    sign, logdet = np.linalg.slogdet(cov)
    if why is None and sign <= 0:
        why = "the covariance of the codes is not positive definite"
    if why is not None:
        warnings.warn(UntwineWarning(f"gaussian_total_correlation is undefined: {why}; reported as NaN"), stacklevel=2)
        return float("nan")
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(cov) -> float:
    """Squared W2 distance between ``N(0, cov)`` and ``N(0, diag(cov))``."""
    cov = np.asarray(cov, dtype=np.float64)
    root = np.sqrt(np.diag(cov))
    sym = cov * np.outer(root, root)
    eig = np.clip(np.linalg.eigvalsh(sym), 0.0, None)
    return float(2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(eig)))


def unsupervised(codes, *, num_bins: int = 20) -> dict[str, float]:
    """Unsupervised scores of ``codes`` [N, D]; returns a dict of four floats."""
    c = as_codes(codes)
    d = c.shape[1]
    if d < 2:
        raise UntwineError(f"the unsupervised scores need at least 2 code dimensions, got {d}")
    if c.shape[0] < 2:
        raise UntwineError(f"the unsupervised scores need at least 2 samples, got {c.shape[0]}")
    active = np.var(c, axis=0) > 0
    if active.any():
        cov = np.atleast_2d(np.cov(c[:, active], rowvar=False))
        tc = gaussian_total_correlation(cov, c.shape[0])
        wc = gaussian_wasserstein_correlation(cov)
        wc_norm = wc / float(np.trace(cov))
    else:
        tc = wc = wc_norm = 0.0
    discrete = histogram_discretize(native_float(codes, c), num_bins)
    mi = mutual_info_matrix(discrete, discrete)
    np.fill_diagonal(mi, 0.0)
    return {
        "gaussian_total_correlation": tc,
        "gaussian_wasserstein_correlation": wc,
        "gaussian_wasserstein_correlation_norm": wc_norm,
        "mutual_info_score": float(np.sum(mi) / (d * d - d)),
    }
