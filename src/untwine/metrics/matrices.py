"""Factor x latent matrices ``[D, K]`` (one row per latent, one column per factor), the
numbers behind the reports' heatmaps and the findings paragraph.

* :func:`normalized_mi` -- ``I(z_j; v_k) / H(v_k)`` with codes discretised into 20
  equal-width bins (the discretisation of MIG; Chen et al. 2018, as disentanglement_lib's
  ``histogram_discretize`` + ``discrete_mutual_info``).
* :func:`dci_importance` -- the importance matrix ``R`` of DCI (Eastwood & Williams
  2018), from :func:`untwine.metrics.dci.importance_matrix` with its default estimator.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import check_pair


def normalized_mi(codes, factors, *, bins: int = 20) -> np.ndarray:
    """``[D, K]`` matrix of ``I(z_j; v_k) / H(v_k)`` (codes discretised into ``bins`` bins)."""
    from untwine.metrics._info import discrete_entropy, histogram_discretize, mutual_info_matrix

    c, f = check_pair(codes, factors)
    mi = np.asarray(mutual_info_matrix(histogram_discretize(c, bins), f), dtype=np.float64)
    h = np.asarray(discrete_entropy(f), dtype=np.float64).reshape(-1)
    if mi.shape == (f.shape[1], c.shape[1]):
        mi = mi.T
    return mi / np.where(h > 0, h, 1.0)[None, :]


def dci_importance(codes_train, factors_train, codes_test, factors_test, *, seed: int = 0) -> np.ndarray:
    """The DCI importance matrix ``R`` ``[D, K]`` (rows sum to each latent's total importance)."""
    from untwine.metrics.dci import importance_matrix

    out = importance_matrix(codes_train, factors_train, codes_test, factors_test, seed=seed)
    r = out[0] if isinstance(out, tuple) else out
    return np.asarray(r, dtype=np.float64)
