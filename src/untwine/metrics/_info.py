"""Shared information-theoretic helpers for the array metrics.

* :func:`histogram_discretize` -- the equal-width histogram discretisation that
  disentanglement_lib (``utils._histogram_discretize``, selected by
  ``discretizer.discretizer_fn = @histogram_discretizer``) applies to codes
  before MIG, Modularity, IRS (there: to the factors) and the unsupervised
  mutual-information score: per column, ``num_bins`` equal-width bins between
  the column's minimum and maximum; a value falls in bin ``b`` when it is at
  least the ``b``-th left edge (the maximum falls in the last bin).
* :func:`mutual_info_matrix` -- plug-in mutual information (natural log) of
  every pair of discrete columns, equal to
  ``sklearn.metrics.mutual_info_score`` per pair but computed from
  contingency tables built with one ``np.bincount`` per pair.
* :func:`discrete_entropy` -- plug-in entropy (natural log) of every column.

All functions take ``[N, columns]`` arrays (rows are samples).
"""

from __future__ import annotations

import numpy as np

from untwine.errors import UntwineError

__all__ = [
    "histogram_discretize",
    "mutual_info_matrix",
    "discrete_entropy",
    "native_float",
]


def native_float(original, validated: np.ndarray) -> np.ndarray:
    """Return the codes in their own floating dtype (float64 for non-floats).

    ``validated`` is the float64 copy made by :func:`untwine._checks.as_codes`.
    Histogram edges are computed in the data's dtype (as ``np.histogram`` does),
    so float32 codes must be binned as float32 to reproduce the reference bins.
    """
    if hasattr(original, "detach"):
        original = original.detach().cpu().numpy()
    arr = np.asarray(original)
    if arr.dtype.kind == "f" and arr.dtype != np.float64:
        return arr.reshape(validated.shape)
    return validated


def histogram_discretize(codes, num_bins: int = 20) -> np.ndarray:
    """Discretise each column into ``num_bins`` equal-width bins.

    Returns an int64 array of the same shape holding bin indices
    ``0..num_bins-1``.  Bin edges are those of ``np.histogram(column,
    num_bins)`` (computed in the column's dtype); a value is assigned the last
    left edge it reaches, so the column maximum lands in the last bin.  A
    constant column lands in a single bin.  The partition is the one of
    disentanglement_lib's ``_histogram_discretize`` (which numbers the bins
    ``1..num_bins``).
    """
    num_bins = int(num_bins)
    if num_bins < 1:
        raise UntwineError(f"num_bins must be at least 1, got {num_bins}")
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    out = np.empty(arr.shape, dtype=np.int64)
    for j in range(arr.shape[1]):
        col = arr[:, j]
        left_edges = np.histogram_bin_edges(col, num_bins)[:-1]
        out[:, j] = np.searchsorted(left_edges, col, side="right") - 1
    return out


def _labels(col: np.ndarray) -> tuple[np.ndarray, int]:
    """Map a column of labels to ``0..n-1`` (sorted order) and return ``n``."""
    col = np.asarray(col)
    if col.dtype.kind in "iub":
        lo = int(col.min())
        hi = int(col.max())
        if hi - lo < 4 * col.shape[0] + 64:
            # small integer range: cheap relabelling without sorting
            present = np.zeros(hi - lo + 1, dtype=bool)
            shifted = col.astype(np.int64) - lo
            present[shifted] = True
            lut = np.cumsum(present) - 1
            return lut[shifted], int(present.sum())
    uniq, inv = np.unique(col, return_inverse=True)
    return inv.reshape(-1), int(uniq.shape[0])


def _mi_from_counts(counts: np.ndarray, n: int) -> float:
    """Plug-in mutual information (nats) of a 2-D contingency table."""
    rows = counts.sum(axis=1)
    cols = counts.sum(axis=0)
    if np.count_nonzero(rows) <= 1 or np.count_nonzero(cols) <= 1:
        return 0.0
    i, j = np.nonzero(counts)
    nij = counts[i, j].astype(np.float64)
    outer = rows[i].astype(np.float64) * cols[j].astype(np.float64)
    mi = np.sum(nij * (np.log(nij) + np.log(float(n)) - np.log(outer))) / n
    return max(float(mi), 0.0)


def _as_label_matrix(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UntwineError(f"{name}: expected a 2-D array [N, columns], got shape {tuple(arr.shape)}")
    return arr


def mutual_info_matrix(discrete_codes, factors) -> np.ndarray:
    """Mutual information (nats) between every code column and factor column.

    ``discrete_codes`` is ``[N, D]`` and ``factors`` ``[N, K]``, both holding
    discrete labels (any integers).  Returns ``M`` of shape ``[D, K]`` with
    ``M[j, k] = I(z_j; v_k)``, the plug-in estimate from the joint histogram --
    the quantity ``sklearn.metrics.mutual_info_score(v_k, z_j)`` returns.
    """
    a = _as_label_matrix(discrete_codes, "discrete_codes")
    b = _as_label_matrix(factors, "factors")
    if a.shape[0] != b.shape[0]:
        raise UntwineError(f"discrete_codes has {a.shape[0]} rows but factors has {b.shape[0]}; they must match")
    n = a.shape[0]
    a_lab = [_labels(a[:, j]) for j in range(a.shape[1])]
    b_lab = [_labels(b[:, k]) for k in range(b.shape[1])]
    out = np.zeros((a.shape[1], b.shape[1]))
    for j, (la, na) in enumerate(a_lab):
        for k, (lb, nb) in enumerate(b_lab):
            if na == 1 or nb == 1:
                continue
            if na * nb <= 4 * n + 4096:
                counts = np.bincount(la * nb + lb, minlength=na * nb).reshape(na, nb)
                out[j, k] = _mi_from_counts(counts, n)
            else:  # very many labels: sparse joint table
                joint, nij = np.unique(la.astype(np.int64) * nb + lb, return_counts=True)
                ra = np.bincount(la, minlength=na)[joint // nb].astype(np.float64)
                rb = np.bincount(lb, minlength=nb)[joint % nb].astype(np.float64)
                nij = nij.astype(np.float64)
                mi = np.sum(nij * (np.log(nij) + np.log(float(n)) - np.log(ra * rb))) / n
                out[j, k] = max(float(mi), 0.0)
    return out


def discrete_entropy(factors) -> np.ndarray:
    """Plug-in entropy (nats) of every column of a ``[N, K]`` label array."""
    b = _as_label_matrix(factors, "factors")
    n = b.shape[0]
    h = np.zeros(b.shape[1])
    for k in range(b.shape[1]):
        lab, nb = _labels(b[:, k])
        if nb <= 1:
            continue
        p = np.bincount(lab, minlength=nb).astype(np.float64) / n
        p = p[p > 0]
        h[k] = max(float(-np.sum(p * np.log(p))), 0.0)
    return h
