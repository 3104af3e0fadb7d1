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
  contingency tables built with one ``np.bincount`` per code column (all factor
  columns at once) when the columns have few labels, else one per pair.
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
    if arr.size == 0 or not (np.isfinite(arr.min(0)).all() and np.isfinite(arr.max(0)).all()):
        out = np.empty(arr.shape, dtype=np.int64)  # numpy's own errors and NaN placement
        for j in range(arr.shape[1]):
            col = arr[:, j]
            out[:, j] = np.searchsorted(np.histogram_bin_edges(col, num_bins)[:-1], col, side="right") - 1
        return out
    return _bin_columns(arr, num_bins)


def _bin_columns(arr: np.ndarray, num_bins: int) -> np.ndarray:
    """:func:`histogram_discretize` of finite columns, every column at once: a first guess
    ``floor((v - min) / width)`` corrected by exact comparisons with the left edges (those of
    ``np.histogram_bin_edges``, which depend on the column's minimum and maximum only)."""
    n, d = arr.shape
    lo, hi = arr.min(0), arr.max(0)
    edges = np.empty((d, num_bins + 1), dtype=arr.dtype)  # left edges, then +inf
    for j in range(d):
        edges[j, :num_bins] = np.histogram_bin_edges(np.array([lo[j], hi[j]], dtype=arr.dtype), num_bins)[:-1]
    edges[:, num_bins] = np.inf
    span = edges[:, num_bins - 1].astype(np.float64) - edges[:, 0] if num_bins > 1 else np.ones(d)
    scale = np.where(span > 0, (num_bins - 1) / np.where(span > 0, span, 1.0), 0.0)
    flat = edges.ravel()
    base = np.arange(d) * (num_bins + 1)
    out = np.empty((n, d), dtype=np.int64)
    step = max(1, (1 << 18) // max(d, 1))
    for r0 in range(0, n, step):
        x = arr[r0 : r0 + step]
        b = np.clip(np.floor((x - edges[:, 0]) * scale), 0, num_bins - 1).astype(np.int64)
        while True:  # the guess is off by at most one bin where rounding differs; repeat until exact
            down = (x < flat[base + b]) & (b > 0)
            up = x >= flat[base + b + 1]
            if not (down.any() or up.any()):
                break
            b += up.astype(np.int64) - down
        out[r0 : r0 + step] = b
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


#: largest joint table (labels of a code column times labels of a factor column) of the vectorised path
_MAX_TABLE = 4096
#: elements of one block of the vectorised path (rows times columns)
_BLOCK = 1 << 22


def mutual_info_matrix(discrete_codes, factors) -> np.ndarray:
    """Mutual information (nats) between every code column and factor column.

    ``discrete_codes`` is ``[N, D]`` and ``factors`` ``[N, K]``, both holding
    discrete labels (any integers).  Returns ``M`` of shape ``[D, K]`` with
    ``M[j, k] = I(z_j; v_k)``, the plug-in estimate from the joint histogram --
    the quantity ``sklearn.metrics.mutual_info_score(v_k, z_j)`` returns.
    Passing the same array twice computes one triangle and mirrors it.
    """
    a = _as_label_matrix(discrete_codes, "discrete_codes")
    b = _as_label_matrix(factors, "factors")
    if a.shape[0] != b.shape[0]:
        raise UntwineError(f"discrete_codes has {a.shape[0]} rows but factors has {b.shape[0]}; they must match")
    a_lab = [_labels(col) for col in np.ascontiguousarray(a.T)]
    b_lab = a_lab if discrete_codes is factors else [_labels(col) for col in np.ascontiguousarray(b.T)]
    if a_lab and b_lab and max(na for _, na in a_lab) * max(nb for _, nb in b_lab) <= _MAX_TABLE:
        return _mi_tables(a_lab, b_lab, a.shape[0], symmetric=discrete_codes is factors)
    return _mi_pairs(a_lab, b_lab, a.shape[0])


def _mi_pairs(a_lab, b_lab, n: int) -> np.ndarray:
    """:func:`mutual_info_matrix` one pair of columns at a time (any number of labels)."""
    out = np.zeros((len(a_lab), len(b_lab)))
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


def _mi_tables(a_lab, b_lab, n: int, symmetric: bool = False) -> np.ndarray:
    """:func:`mutual_info_matrix` for few labels per column, every factor column of a code column at once.

    ``I = (sum n_ij log n_ij - sum r_i log r_i - sum c_j log c_j) / n + log n`` from the
    joint counts; for code column ``j`` only the rows off its most frequent label are
    counted (one ``bincount`` for all factor columns), the most frequent label's row of
    each table is the factor's counts minus the other rows (sparse codes: most rows are
    at their mode).
    """
    A = np.stack([la for la, _ in a_lab])  # [D, N]: one code column per row
    B = np.stack([lb for lb, _ in b_lab], axis=1)  # [N, K]
    na = np.array([m for _, m in a_lab])
    nb = np.array([m for _, m in b_lab])
    pa, pb = int(na.max()), int(nb.max())
    D, K = A.shape[0], B.shape[1]
    xlogx = np.arange(n + 1, dtype=np.float64)
    xlogx[1:] *= np.log(xlogx[1:])
    ca = np.stack([np.bincount(col, minlength=pa) for col in A])  # [D, pa]
    cb = np.stack([np.bincount(B[:, k], minlength=pb) for k in range(K)])  # [K, pb]
    ha, hb = xlogx[ca].sum(1), xlogx[cb].sum(1)
    mode = ca.argmax(1)
    out = np.zeros((D, K))
    step = max(1, min(K, _BLOCK // (pa * pb), _BLOCK // max(n, 1)))
    for j in range(D):
        if na[j] == 1:
            continue
        rows = np.flatnonzero(A[j] != mode[j])
        aj = A[j, rows][:, None] * pb
        for k0 in range(j if symmetric else 0, K, step):
            k1 = min(K, k0 + step)
            idx = aj + B[rows, k0:k1] + np.arange(k1 - k0)[None, :] * (pa * pb)
            counts = np.bincount(idx.ravel(), minlength=(k1 - k0) * pa * pb).reshape(k1 - k0, pa, pb)
            counts[:, mode[j], :] = cb[k0:k1] - counts.sum(axis=1)
            mi = (xlogx[counts].sum(axis=(1, 2)) - ha[j] - hb[k0:k1]) / n + np.log(float(n))
            out[j, k0:k1] = np.where(nb[k0:k1] > 1, np.maximum(mi, 0.0), 0.0)
    if symmetric:
        out = np.triu(out) + np.triu(out, 1).T
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
