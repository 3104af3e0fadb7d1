"""Representation health: geometry of a set of activation vectors ``x [N, D]``.

Each function takes an array of rows (one activation vector per row), validates it
(finite numbers, at least two rows, ``k`` below the number of rows) and returns one
float; :func:`health_report` runs them all and returns a dict of named floats together
with the subsampling it used.  Bad input raises :class:`untwine.errors.UntwineError`
with one line.

=====================  =================================================================
measure                definition (``u_i = x_i / ||x_i||`` the L2-normalised rows)
=====================  =================================================================
anisotropy             Ethayarajh 2019, "How Contextual are Contextualized Word
                       Representations?": mean cosine similarity over the ``N(N-1)``
                       ordered pairs of distinct rows, raw (not centred):
                       ``(||sum_i u_i||^2 - N) / (N (N - 1))``.  0 for isotropic
                       centred data, 1 when all rows point the same way.
isotropy               Mu & Viswanath 2018, "All-but-the-Top": partition function
                       ``Z(c) = sum_i exp(c . x_i)``; ``min_c Z(c) / max_c Z(c)`` over the
                       unit eigenvectors ``c`` of ``X^T X`` (raw ``X``).  An eigenvector's
                       sign is arbitrary, so both ``c`` and ``-c`` are used.  In (0, 1];
                       1 is perfectly isotropic.
effective_rank         Roy & Vetterli 2007, "The effective rank: a measure of effective
                       dimensionality": ``exp(-sum_k p_k log p_k)`` with
                       ``p_k = s_k / sum_j s_j`` and ``s`` the singular values of the
                       mean-centred matrix.  Equals ``r`` for ``r`` equal singular values.
von_neumann_entropy    ``-sum_i l_i log l_i`` over the eigenvalues ``l`` of the
                       trace-normalised Gram matrix ``U U^T / N`` of the unit rows (the
                       quantum entropy used as a rank measure, e.g. by Skean et al.
                       2025, "Layer by Layer"); 0 when all rows coincide, ``log D`` at most.
hubness                Radovanovic, Nanopoulos & Ivanovic 2010, "Hubs in Space":
                       skewness ``E[(N_k - mu)^3] / sigma^3`` of the k-occurrence counts
                       ``N_k(i)`` (how often row ``i`` is among the ``k = 10`` Euclidean
                       nearest neighbours of the other rows).  0 when every count is equal.
lid_mle                Levina & Bickel 2004, "Maximum Likelihood Estimation of Intrinsic
                       Dimension": per row ``m(x) = [1/(k-1) sum_{j<k} log(T_k / T_j)]^-1``
                       with ``T_j`` the distance to the ``j``-th nearest neighbour,
                       ``k = 20``; averaged over rows.
twonn_dimension        Facco, d'Errico, Rodriguez & Laio 2017, "Estimating the intrinsic
                       dimension of datasets by a minimal neighborhood information":
                       ``mu_i = r_2 / r_1`` (second over first neighbour distance) is
                       Pareto with index ``d``; maximum likelihood ``d = N / sum_i log mu_i``.
uniformity             Wang & Isola 2020, "Understanding Contrastive Representation
                       Learning through Alignment and Uniformity on the Hypersphere":
                       ``log mean_{i<j} exp(-2 ||u_i - u_j||^2)``; in [-8, 0], 0 when all
                       rows coincide, lower is more uniform.
=====================  =================================================================

**Sizes.**  Anisotropy, isotropy, effective rank and the von Neumann entropy are computed
exactly on every row (cost linear in ``N``).  The neighbour and pair measures (hubness,
LID, TwoNN, uniformity) cost ``N^2``: they use every row up to ``max_rows`` (default
:data:`MAX_PAIR_ROWS` = 4000) and above it a subsample of ``max_rows`` rows drawn without
replacement with ``numpy.random.default_rng(seed)``; :func:`health_report` states the rows
used (``rows_sampled``) and the seed.  Hubness depends on the number of rows, so compare
it at equal sizes.

**Duplicates.**  Rows at distance 0 from their nearest neighbour are left out of LID and
TwoNN (the log-ratios are undefined there); zero rows (no direction) are refused by the
measures that normalise rows.

All arithmetic is float64 numpy; neighbours are found exactly by blocked brute force.
"""

from __future__ import annotations

import math

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError

#: above this many rows the neighbour / pair measures use a seeded subsample
MAX_PAIR_ROWS = 4000
#: default neighbours for hubness (Radovanovic et al. use k = 10)
HUBNESS_K = 10
#: default neighbours for the Levina-Bickel estimator
LID_K = 20
#: names of the measures, in report order
MEASURES = (
    "anisotropy",
    "isotropy",
    "effective_rank",
    "von_neumann_entropy",
    "hubness",
    "lid_mle",
    "twonn_dimension",
    "uniformity",
)

_BLOCK = 1024


# -- validation ------------------------------------------------------------------
def _rows(x, name: str = "activations", min_rows: int = 2) -> np.ndarray:
    arr = as_codes(x, name)
    if arr.shape[0] < min_rows:
        raise UntwineError(f"{name}: needs at least {min_rows} rows, got {arr.shape[0]}")
    return arr


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    if zero.any():
        raise UntwineError(
            f"{name}: {int(zero.sum())} all-zero row(s) (first at row {int(np.argmax(zero))}) have no direction; drop them first"
        )
    return x / norms[:, None]


def _check_k(k, n: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise UntwineError(f"{what}: k must be a positive integer, got {k!r}")
    if k >= n:
        raise UntwineError(f"{what}: k = {k} neighbours needs more than {k} rows, got {n}; lower k or give more rows")
    return int(k)


def subsample(x: np.ndarray, max_rows: int | None, seed: int = 0) -> np.ndarray:
    """``x`` itself when it has at most ``max_rows`` rows, else ``max_rows`` rows drawn without
    replacement by ``numpy.random.default_rng(seed)`` (kept in their original order)."""
    if max_rows is None or x.shape[0] <= max_rows:
        return x
    if max_rows < 2:
        raise UntwineError(f"max_rows must be at least 2, got {max_rows}")
    idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=int(max_rows), replace=False))
    return x[idx]


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean ``k`` nearest neighbours of every row among the *other* rows.

    Returns ``(distances [N, k], indices [N, k])`` sorted by distance (ties by index).
    Candidates come from blocked squared distances; the kept distances are recomputed
    directly as ``||x_i - x_j||`` so near-zero distances are exact.
    """
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    idx = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        d2 = sq[s:e, None] + sq[None, :] - 2.0 * (x[s:e] @ x.T)
        d2[np.arange(e - s), np.arange(s, e)] = np.inf
        idx[s:e] = np.argpartition(d2, k - 1, axis=1)[:, :k]
    dist = np.empty((n, k))
    step = max(1, (1 << 21) // (k * x.shape[1]))  # about 16 MB of float64 differences per block
    for s in range(0, n, step):  # exact distances, in blocks of rows to bound memory
        e = min(n, s + step)
        dist[s:e] = np.linalg.norm(x[s:e, None, :] - x[idx[s:e]], axis=2)
    order = np.lexsort((idx, dist), axis=1)
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


# -- measures ------------------------------------------------------------------------
def anisotropy(x) -> float:
    """Mean cosine similarity over distinct pairs of rows, raw (Ethayarajh 2019; module docstring)."""
    arr = _rows(x)
    u = _unit_rows(arr, "activations")
    n = u.shape[0]
    s = u.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def isotropy(x) -> float:
    """Mu & Viswanath's ``min_c Z(c) / max_c Z(c)``, ``c`` the eigenvectors of ``X^T X`` with both signs."""
    arr = _rows(x)
    _, vecs = np.linalg.eigh(arr.T @ arr)
    proj = arr @ vecs  # [N, D]: c . x_i for every eigenvector c
    proj = np.concatenate([proj, -proj], axis=1)
    m = proj.max(axis=0)
    log_z = m + np.log(np.exp(proj - m).sum(axis=0))
    return float(math.exp(log_z.min() - log_z.max()))


def effective_rank(x) -> float:
    """Roy & Vetterli's ``exp(entropy(s / sum s))``, ``s`` the singular values of the centred matrix."""
    arr = _rows(x)
    s = np.linalg.svd(arr - arr.mean(axis=0), compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 0.0  # every row equal: no spread in any direction
    p = s[s > 0] / total
    return float(math.exp(-(p * np.log(p)).sum()))


def von_neumann_entropy(x) -> float:
    """``-sum l log l`` over the eigenvalues of ``U U^T / N``, ``U`` the L2-normalised rows (natural log)."""
    arr = _rows(x)
    u = _unit_rows(arr, "activations")
    # the non-zero eigenvalues of U U^T / N are those of U^T U / N ([D, D], cheaper when D < N)
    small = u.T @ u if u.shape[1] <= u.shape[0] else u @ u.T
    lam = np.clip(np.linalg.eigvalsh(small / u.shape[0]), 0.0, None)
    lam = lam[lam > 1e-15]
    lam = lam / lam.sum()
    return float(-(lam * np.log(lam)).sum())


def _skewness(v: np.ndarray) -> float:
    v = v.astype(np.float64)
    c = v - v.mean()
    var = (c**2).mean()
    if var <= 1e-24:
        return 0.0
    return float((c**3).mean() / var**1.5)


def _hubness_of(idx: np.ndarray, n: int) -> float:
    return _skewness(np.bincount(idx.ravel(), minlength=n))


def _lid_of(dist: np.ndarray) -> float:
    k = dist.shape[1]
    ok = dist[:, 0] > 0
    if not ok.any():
        raise UntwineError("lid_mle: every row has a duplicate; the intrinsic dimension is undefined")
    d = dist[ok]
    logs = np.log(d[:, -1:] / d[:, :-1]).sum(axis=1) / (k - 1)
    m = np.where(logs > 0, 1.0 / np.where(logs > 0, logs, 1.0), np.inf)
    m = m[np.isfinite(m)]
    if m.size == 0:
        raise UntwineError("lid_mle: every row's k neighbours are equidistant; the intrinsic dimension is undefined")
    return float(m.mean())


def _twonn_of(dist: np.ndarray) -> float:
    ok = dist[:, 0] > 0
    if not ok.any():
        raise UntwineError("twonn_dimension: every row has a duplicate; the intrinsic dimension is undefined")
    total = np.log(dist[ok, 1] / dist[ok, 0]).sum()
    if total <= 0:
        raise UntwineError("twonn_dimension: every row's two nearest neighbours are equidistant; dimension undefined")
    return float(ok.sum() / total)


def _check_lid_k(k, n: int) -> int:
    k = _check_k(k, n, "lid_mle")
    if k < 2:
        raise UntwineError(f"lid_mle: k must be at least 2, got {k}")
    return k


def hubness(x, k: int = HUBNESS_K, *, max_rows: int | None = MAX_PAIR_ROWS, seed: int = 0) -> float:
    """Skewness of the k-occurrence counts (Radovanovic et al. 2010), Euclidean, ``k = 10``."""
    arr = subsample(_rows(x), max_rows, seed)
    k = _check_k(k, arr.shape[0], "hubness")
    return _hubness_of(knn(arr, k)[1], arr.shape[0])


def lid_mle(x, k: int = LID_K, *, max_rows: int | None = MAX_PAIR_ROWS, seed: int = 0) -> float:
    """Levina-Bickel maximum-likelihood local intrinsic dimension, ``k = 20``, averaged over rows."""
    arr = subsample(_rows(x), max_rows, seed)
    return _lid_of(knn(arr, _check_lid_k(k, arr.shape[0]))[0])


def twonn_dimension(x, *, max_rows: int | None = MAX_PAIR_ROWS, seed: int = 0) -> float:
    """Facco et al.'s TwoNN intrinsic dimension, maximum likelihood ``N / sum log(r2 / r1)``."""
    arr = subsample(_rows(x, min_rows=3), max_rows, seed)
    return _twonn_of(knn(arr, 2)[0])


def uniformity(x, *, max_rows: int | None = MAX_PAIR_ROWS, seed: int = 0) -> float:
    """Wang & Isola's ``log mean_{i<j} exp(-2 ||u_i - u_j||^2)`` over L2-normalised rows."""
    arr = subsample(_rows(x), max_rows, seed)
    u = _unit_rows(arr, "activations")
    n = u.shape[0]
    # ||u_i - u_j||^2 = 2 - 2 u_i . u_j; exp(-2 * that) = exp(-4 + 4 cos); log-sum-exp over i < j
    parts = []
    for s in range(0, n, _BLOCK):
        e = min(n, s + _BLOCK)
        cos = np.clip(u[s:e] @ u.T, -1.0, 1.0)
        rows, cols = np.triu_indices(e - s, k=1, m=n - s)
        vals = 4.0 * cos[:, s:][rows, cols] - 4.0
        if vals.size:
            m = vals.max()
            parts.append((m, np.log(np.exp(vals - m).sum())))
    mx = max(m for m, _ in parts)
    total = mx + math.log(sum(math.exp(m + lse - mx) for m, lse in parts))
    return float(total - math.log(n * (n - 1) / 2))


def health_report(
    x,
    *,
    hubness_k: int = HUBNESS_K,
    lid_k: int = LID_K,
    max_rows: int | None = MAX_PAIR_ROWS,
    seed: int = 0,
    measures=MEASURES,
) -> dict[str, float]:
    """Every measure of ``measures`` on ``x`` as a flat dict of floats.

    Besides one key per measure, the dict holds ``rows`` and ``dims`` (the input's
    size), ``rows_sampled`` (rows used by hubness, LID, TwoNN and uniformity: all of
    them up to ``max_rows``, else a subsample) and ``sample_seed`` (the seed of that
    subsample).  Rows are subsampled once, and one exact neighbour search
    (``max(hubness_k, lid_k, 2)`` neighbours) serves hubness, LID and TwoNN.
    """
    arr = _rows(x)
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise UntwineError(f"unknown health measure(s) {', '.join(unknown)}; known: {', '.join(MEASURES)}")
    if max_rows is not None and max_rows < 2:
        raise UntwineError(f"max_rows must be at least 2, got {max_rows}")
    sub = subsample(arr, max_rows, seed)
    out: dict[str, float] = {"rows": float(arr.shape[0]), "dims": float(arr.shape[1])}
    out["rows_sampled"] = float(sub.shape[0])
    out["sample_seed"] = float(seed)
    n = sub.shape[0]
    needs = {"hubness": lambda: _check_k(hubness_k, n, "hubness"), "lid_mle": lambda: _check_lid_k(lid_k, n),
             "twonn_dimension": lambda: 2 if n >= 3 else _rows(sub, min_rows=3).shape[0]}
    ks = [needs[m]() for m in measures if m in needs]
    dist, idx = knn(sub, max(ks)) if ks else (None, None)  # one neighbour search shared by the three
    for name in MEASURES:
        if name not in measures:
            continue
        if name == "anisotropy":
            out[name] = anisotropy(arr)
        elif name == "isotropy":
            out[name] = isotropy(arr)
        elif name == "effective_rank":
            out[name] = effective_rank(arr)
        elif name == "von_neumann_entropy":
            out[name] = von_neumann_entropy(arr)
        elif name == "hubness":
            out[name] = _hubness_of(idx[:, :hubness_k], n)
        elif name == "lid_mle":
            out[name] = _lid_of(dist[:, :lid_k])
        elif name == "twonn_dimension":
            out[name] = _twonn_of(dist[:, :2])
        elif name == "uniformity":
            out[name] = uniformity(sub, max_rows=None)
    return out


__all__ = [
    "HUBNESS_K",
    "LID_K",
    "MAX_PAIR_ROWS",
    "MEASURES",
    "anisotropy",
    "effective_rank",
    "health_report",
    "hubness",
    "isotropy",
    "knn",
    "lid_mle",
    "subsample",
    "twonn_dimension",
    "uniformity",
    "von_neumann_entropy",
]
