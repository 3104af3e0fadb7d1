"""Mutual Information Gap (MIG).

Reference: Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement
in Variational Autoencoders", NeurIPS 2018; disentanglement_lib
``evaluation/metrics/mig.py`` (``compute_mig`` / ``_compute_mig``).

Definition (as in disentanglement_lib): every code column is discretised into
``num_bins`` equal-width histogram bins, the plug-in mutual information
``I(z_j; v_k)`` (nats) is computed for every code/factor pair, and for each
factor the gap between the largest and second-largest mutual information over
codes is divided by the factor's entropy ``H(v_k)``.  MIG is the mean gap over
factors.

Defaults (disentanglement_lib ``unsupervised_study_v1``): 10000 training
points, ``num_bins=20`` (histogram discretiser).  MIG is computed on the
training split only.  Requires at least two code dimensions.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import check_pair
from untwine.errors import UntwineError
from untwine.metrics._info import discrete_entropy, histogram_discretize, mutual_info_matrix, native_float

__all__ = ["mig", "mig_from_mi"]


def mig_from_mi(mi: np.ndarray, entropy: np.ndarray) -> float:
    """MIG from a ``[D, K]`` mutual-information matrix and factor entropies ``[K]``."""
    mi = np.asarray(mi, dtype=np.float64)
    if mi.shape[0] < 2:
        raise UntwineError(f"MIG needs at least 2 code dimensions, got {mi.shape[0]}")
    top2 = -np.sort(-mi, axis=0)[:2]
    return float(np.mean((top2[0] - top2[1]) / np.asarray(entropy, dtype=np.float64)))


def mig(codes, factors, *, num_bins: int = 20) -> dict[str, float]:
    """Mutual Information Gap of ``codes`` [N, D] with respect to ``factors`` [N, K].

    Returns ``{"mig": value}``; the value lies in ``[0, 1]``.
    """
    c, f = check_pair(codes, factors)
    if c.shape[1] < 2:
        raise UntwineError(f"MIG needs at least 2 code dimensions, got {c.shape[1]}")
    discrete = histogram_discretize(native_float(codes, c), num_bins)
    mi = mutual_info_matrix(discrete, f)
    return {"mig": mig_from_mi(mi, discrete_entropy(f))}
