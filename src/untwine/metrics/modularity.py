"""Modularity.

Reference: Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the
F-Statistic Loss", NeurIPS 2018; disentanglement_lib
``evaluation/metrics/modularity_explicitness.py`` (``modularity``, called from
``compute_modularity_explicitness``).

Definition (as in disentanglement_lib): codes are discretised into
``num_bins`` equal-width histogram bins and the plug-in mutual information
matrix ``m[j, k] = I(z_j; v_k)`` is formed.  For each code ``j`` with
``theta_j = max_k m[j, k]^2``::

    delta_j = (sum_k m[j, k]^2 - theta_j) / (theta_j * (K - 1))
    modularity_j = 1 - delta_j          (0 when theta_j == 0)

and the score is the mean over codes.

Defaults (disentanglement_lib ``unsupervised_study_v1``): 10000 training
points, ``num_bins=20``.  Computed on the training split only.  With one factor
``delta`` is 0/0 (every code trivially concentrates on the one factor): modularity is
then NaN with a warning (``null`` in JSON, listed under ``_undefined``).
"""

from __future__ import annotations

import numpy as np

from untwine._checks import check_pair
from untwine.metrics._info import histogram_discretize, mutual_info_matrix, native_float
from untwine.metrics._undefined import SINGLE_FACTOR, undefined

__all__ = ["modularity", "modularity_from_mi"]


def modularity_from_mi(mi: np.ndarray) -> float:
    """Modularity from a ``[D, K]`` mutual-information matrix (NaN, with a warning, for ``K = 1``)."""
    sq = np.square(np.asarray(mi, dtype=np.float64))
    if sq.shape[1] < 2:
        return undefined("modularity", SINGLE_FACTOR)
    theta = sq.max(axis=1)
    active = theta > 0
    per_code = np.zeros(sq.shape[0])
    delta = (sq[active].sum(axis=1) - theta[active]) / (theta[active] * (sq.shape[1] - 1.0))
    per_code[active] = 1.0 - delta
    return float(np.mean(per_code))


def modularity(codes, factors, *, num_bins: int = 20) -> dict[str, float]:
    """Modularity of ``codes`` [N, D] with respect to ``factors`` [N, K].

    Returns ``{"modularity": value}``.
    """
    c, f = check_pair(codes, factors)
    discrete = histogram_discretize(native_float(codes, c), num_bins)
    return {"modularity": modularity_from_mi(mutual_info_matrix(discrete, f))}
