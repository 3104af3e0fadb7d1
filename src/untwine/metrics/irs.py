"""Interventional Robustness Score (IRS).

Reference: Suter, Miladinovic, Schölkopf & Bauer, "Robustly Disentangled
Causal Mechanisms: Validating Deep Representations for Interventional
Robustness", ICML 2019; disentanglement_lib ``evaluation/metrics/irs.py``
(``compute_irs``, ``scalable_disentanglement_score``).

Definition (as in disentanglement_lib): the factors are first discretised
into ``factor_bins`` equal-width histogram bins each (the same discretiser as
MIG; factors with more classes than bins get merged classes), and code
dimensions with zero variance are dropped.  For latent ``j`` and factor ``k``,
``EMPIDA[j, k]`` is the mean over the values ``g`` of factor ``k`` of the
``quantile``-quantile (numpy's linear interpolation) of ``|z_j - E[z_j | v_k
= g]|`` over the samples with ``v_k = g``.  With ``MAXDEV[j] = max_i |z_ij -
mean(z_j)|``, the per-latent score is ``max_k (1 - EMPIDA[j, k] / MAXDEV[j])``
and IRS is its average weighted by ``MAXDEV``.  IRS is 0 when every code
dimension is constant.

Defaults (disentanglement_lib ``config/sample/irs``): 10000 training points,
``quantile=0.99`` (1.0 gives the paper's maximum), ``factor_bins=20``
(``factor_bins=None`` uses the factor classes as they are).  Computed on the
training split only.  Unlike disentanglement_lib, which reports the *sum of
the code values* as ``num_active_dims``, untwine reports only the score.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import check_pair
from untwine.errors import UntwineError
from untwine.metrics._info import histogram_discretize, native_float

__all__ = ["irs", "irs_matrix"]


def irs_matrix(codes: np.ndarray, groups: np.ndarray, quantile: float = 0.99):
    """Return ``(irs_matrix [D, K], max_deviations [D])`` for active codes.

    ``codes`` must have no constant column; ``groups`` is ``[N, K]`` discrete.
    """
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    empida = np.zeros((codes.shape[1], groups.shape[1]))
    q = quantile * 100.0
    for k in range(groups.shape[1]):
        values, inverse = np.unique(groups[:, k], return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(values.shape[0] + 1))
        sorted_codes = codes[order]
        for g in range(values.shape[0]):
            block = sorted_codes[bounds[g] : bounds[g + 1]]
            dev = np.abs(block - block.mean(axis=0))
            empida[:, k] += np.percentile(dev, q, axis=0)
        empida[:, k] /= values.shape[0]
    return 1.0 - empida / max_dev[:, None], max_dev


def irs(codes, factors, *, quantile: float = 0.99, factor_bins: int | None = 20) -> dict[str, float]:
    """Interventional Robustness Score of ``codes`` [N, D] for ``factors`` [N, K].

    Returns ``{"irs": value}``.
    """
    c, f = check_pair(codes, factors)
    if not 0.0 <= quantile <= 1.0:
        raise UntwineError(f"quantile must lie in [0, 1], got {quantile}")
    groups = f if factor_bins is None else histogram_discretize(f, factor_bins)
    z = native_float(codes, c)
    active = z.var(axis=0) > 0.0
    if not active.any():
        return {"irs": 0.0}
    z = np.asarray(z[:, active], dtype=np.float64)
    matrix, max_dev = irs_matrix(z, groups, quantile)
    per_latent = matrix.max(axis=1)
    return {"irs": float(np.average(per_latent, weights=max_dev))}
