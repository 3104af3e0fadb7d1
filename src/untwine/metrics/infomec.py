"""InfoMEC: InfoM (modularity), InfoE (explicitness), InfoC (compactness).

Reference: Hsu, Dorrell, Whittington, Wu & Finn, "Disentanglement via Latent
Quantization", NeurIPS 2023; the paper's standalone metric code
(``disentangle/metrics/infomec.py`` of github.com/kylehkhsu/latent_quantization:
``compute_infomec``, ``compute_nmi``, ``compute_infoe``).  There is no
disentanglement_lib counterpart.

Definition and defaults (those of the standalone code)
------------------------------------------------------
* ``NMI[k, j] = I(v_k; z_j) / H(v_k)`` (nats).  Continuous latents are
  standardised and ``I`` is the k-nearest-neighbour estimator of Ross (2014)
  that ``sklearn.feature_selection.mutual_info_classif(n_neighbors=10)``
  implements (computed here exactly, with sorted 1-D neighbour searches; the
  ``1e-10``-scale tie-breaking noise scikit-learn adds is drawn from ``seed``,
  the reference leaves it unseeded).  Discrete latents use the plug-in
  estimate.  ``H(v_k)`` is the plug-in entropy.
* A latent is active when its range (max - min) exceeds 1/20 of the largest
  latent range (discrete latents: when it is not constant).  ``L`` = number of
  active latents, ``K`` = number of factors.
* InfoM = (mean over active latents j of max_k NMI / sum_k NMI - 1/K) / (1 - 1/K).
* InfoC = (mean over factors k of max_j NMI / sum_j NMI - 1/L) / (1 - 1/L), over
  active latents only.
* InfoE = mean over factors of (H_null - H_pred) / H_null, where H_pred is the
  training log-loss of an unregularised multinomial logistic regression
  (lbfgs, tol 1e-4, at most 100 iterations, balanced class weights) on all
  standardised latents (one-hot for discrete latents), fitted and scored on the
  same sample, and H_null that of the same model without features.  With
  balanced class weights the featureless model predicts the uniform
  distribution, so H_null = log(number of classes) (computed in closed form).
  The reference fits scikit-learn's ``LogisticRegression(C=inf,
  class_weight="balanced")``; here the same problem is minimised with the same
  L-BFGS settings by :mod:`untwine.metrics._logistic`, with the softmax in
  float32: about twice as fast, InfoE within 2e-4 of scikit-learn's on aligned,
  noisy, mixed and random codes, continuous and discrete (the classifier
  usually stops at 100 iterations, where small rounding differences remain).

Differences from the reference code (documented choices)
--------------------------------------------------------
* The reference returns NaN when an active latent has zero estimated mutual
  information with every factor (0/0), or a factor with every active latent.
  Here such a latent (factor) counts at the chance level 1/K (1/L), i.e. it
  contributes 0 after rescaling.
* With a single factor InfoM is undefined (the rescaling by 1 - 1/K divides 0 by 0; every
  latent trivially concentrates on the one factor), and so is InfoC with a single active
  latent: NaN with a warning (``null`` in JSON, listed under ``_undefined``), where the
  paper's code also gives NaN and a conventional 1.0 would carry no information.  With no
  active latent both are 0.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

from untwine._checks import check_pair
from untwine.errors import UntwineError
from untwine.metrics._info import discrete_entropy, mutual_info_matrix
from untwine.blas import one_blas_thread
from untwine.metrics._logistic import logistic_regression_proba
from untwine.metrics._undefined import SINGLE_FACTOR, SINGLE_LATENT, undefined

__all__ = ["infomec", "nmi_matrix", "active_latents", "knn_mutual_info", "knn_mutual_info_matrix"]

#: a continuous latent is active when its range exceeds this fraction of the largest range
ACTIVE_FRACTION = 1.0 / 20.0


def _label_encode(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        out[:, j] = np.unique(x[:, j], return_inverse=True)[1].ravel()
    return out


def _standardize(x: np.ndarray) -> np.ndarray:
    """Per-column (x - mean) / std, leaving constant columns centred (StandardScaler)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), 1.0, std)
    return (x - mean) / std


def _knn_radius_1d(s: np.ndarray, k, start=0, end=None) -> np.ndarray:
    """Distance from every point of ``s`` to its k-th nearest other point of its group.

    ``s`` is sorted within contiguous groups; ``start``/``end`` give each point's group
    bounds (default: one group, all of ``s``) and ``k`` its neighbour count (an int or
    one per point), so every class of a label is done in one pass.
    """
    return _radius_in_windows(s, _knn_windows(len(s), k, start, end))


def _knn_windows(c: int, k, start=0, end=None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The windows :func:`_knn_radius_1d` looks in, which depend on the group layout only:
    for each offset ``a``, the points ``p`` whose window ``[p - a, p - a + k]`` of ``k + 1``
    points (containing ``p``) lies in their group, with the window's ends."""
    pos = np.arange(c)
    k = np.broadcast_to(np.asarray(k, dtype=np.int64), (c,))
    end = c if end is None else end
    windows = []
    for a in range(int(k.max(initial=0)) + 1):
        lo = pos - a
        hi = lo + k
        ok = np.flatnonzero((a <= k) & (lo >= start) & (hi < end))
        windows.append((ok, lo[ok], hi[ok]))
    return windows


def _radius_in_windows(s: np.ndarray, windows) -> np.ndarray:
    """:func:`_knn_radius_1d` of values ``s`` over windows from :func:`_knn_windows`."""
    best = np.full(len(s), np.inf)
    for ok, lo, hi in windows:
        sk = s[ok]
        best[ok] = np.minimum(best[ok], np.maximum(sk - s[lo], s[hi] - sk))
    return best


def _count_within(srt: np.ndarray, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Number of values of sorted ``srt`` with ``|v - x| <= r`` (exact distance test).

    ``x +- r`` is rounded, so the search bounds are corrected until the
    distances computed as ``|v - x|`` (as a KD-tree does) agree with them.
    """
    n = len(srt)
    hi = np.searchsorted(srt, x + r, side="right")
    lo = np.searchsorted(srt, x - r, side="left")
    for _ in range(64):
        out_hi = (hi > 0) & (srt[np.maximum(hi - 1, 0)] - x > r)
        in_hi = (hi < n) & (srt[np.minimum(hi, n - 1)] - x <= r)
        out_lo = (lo < n) & (x - srt[np.minimum(lo, n - 1)] > r)
        in_lo = (lo > 0) & (x - srt[np.maximum(lo - 1, 0)] <= r)
        if not (out_hi.any() or in_hi.any() or out_lo.any() or in_lo.any()):
            break
        hi = hi - out_hi + in_hi
        lo = lo + out_lo - in_lo
    return hi - lo


def knn_mutual_info(x: np.ndarray, labels: np.ndarray, n_neighbors: int = 10) -> float:
    """Mutual information (nats) between a 1-D continuous ``x`` and discrete ``labels``.

    The estimator of Ross (2014), exactly as scikit-learn's ``_compute_mi_cd``
    (points whose label occurs once are ignored; negative estimates give 0), but
    with neighbours found in sorted order.  ``x`` is used as given (no noise).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    _, lab, counts = np.unique(labels, return_inverse=True, return_counts=True)
    lab = lab.ravel()
    label_counts = counts[lab]
    keep = label_counts > 1
    n = int(keep.sum())
    if n == 0:
        return 0.0
    radius = np.empty(len(x))
    k_all = np.empty(len(x))
    # every class at once: the kept points ordered by class, then by value
    g = np.flatnonzero(keep)
    g = g[np.lexsort((x[g], lab[g]))]
    labs = lab[g]
    k = np.minimum(n_neighbors, counts[labs] - 1)
    r = _knn_radius_1d(x[g], k, np.searchsorted(labs, labs, "left"), np.searchsorted(labs, labs, "right"))
    radius[g] = np.nextafter(r, 0)
    k_all[g] = k
    xs = x[keep]
    r = radius[keep]
    srt = np.sort(xs)
    m_all = _count_within(srt, xs, r)
    mi = digamma(n) + np.mean(digamma(k_all[keep])) - np.mean(digamma(label_counts[keep])) - np.mean(digamma(m_all))
    return max(0.0, float(mi))


def knn_mutual_info_matrix(z: np.ndarray, factors: np.ndarray, n_neighbors: int = 10) -> np.ndarray:
    """``[K, D]`` :func:`knn_mutual_info` of every column of ``z`` ``[N, D]`` with every factor column.

    The same estimate, computed one latent at a time for all factors whose every value occurs
    at least twice (the others go through :func:`knn_mutual_info`): the latent is sorted once,
    each factor's neighbour groups (its values, each sorted by the latent) are laid side by
    side so one :func:`_knn_radius_1d` and one :func:`_count_within` serve every factor, and
    the terms that do not depend on the latent are computed once per factor.
    """
    z = np.asarray(z, dtype=np.float64)
    f = np.asarray(factors)
    n, D, K = z.shape[0], z.shape[1], f.shape[1]
    mi = np.zeros((K, D))
    labs, lay_k, starts, ends, fixed, together = [], [], [], [], [], []
    psi = digamma(np.arange(n + 1, dtype=np.float64))  # digamma of the integer counts, psi[0] unused
    for k in range(K):
        _, lab, counts = np.unique(f[:, k], return_inverse=True, return_counts=True)
        if counts.min() < 2:  # values seen once are left out: their own sample
            for j in range(D):
                mi[k, j] = knn_mutual_info(z[:, j], f[:, k], n_neighbors)
            continue
        lab = lab.ravel().astype(np.int64)
        sorted_lab = np.repeat(np.arange(len(counts)), counts)  # a group's points follow each other
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        off = len(together) * n
        together.append(k)
        labs.append(lab)
        kk = np.minimum(n_neighbors, counts[sorted_lab] - 1)
        lay_k.append(kk)
        starts.append(off + first[sorted_lab])
        ends.append(off + first[sorted_lab] + counts[sorted_lab])
        fixed.append(psi[n] + np.mean(psi[kk]) - np.mean(psi[counts[lab]]))
    if not together:
        return mi
    kk, start, end = np.concatenate(lay_k), np.concatenate(starts), np.concatenate(ends)
    windows = _knn_windows(len(kk), kk, start, end)
    fixed = np.array(fixed)
    for j in range(D):
        x = z[:, j]
        order = np.argsort(x, kind="stable")
        srt = x[order]
        # each factor's points ordered by value, then by x (the order of np.lexsort((x, lab)))
        g = np.concatenate([order[np.argsort(lab[order], kind="stable")] for lab in labs])
        r = np.nextafter(_radius_in_windows(x[g], windows), 0)
        m = _count_within(srt, x[g], r)
        est = fixed - psi[m].reshape(len(together), n).mean(axis=1)
        mi[together, j] = np.maximum(est, 0.0)
    return mi


def _prepare_continuous(codes: np.ndarray, seed: int) -> np.ndarray:
    """Standardise, rescale to unit variance and add sklearn's tie-breaking noise."""
    z = _standardize(codes)
    std = z.std(axis=0)
    z = z / np.where(std == 0, 1.0, std)  # sklearn.preprocessing.scale(with_mean=False)
    rng = np.random.default_rng(seed)
    scale = np.maximum(1.0, np.mean(np.abs(z), axis=0))
    return z + 1e-10 * scale * rng.standard_normal(z.shape)


def nmi_matrix(
    codes, factors, *, discrete_latents: bool = False, n_neighbors: int = 10, seed: int = 0
) -> np.ndarray:
    """Normalised mutual information ``[K, D]``: ``I(v_k; z_j) / H(v_k)``."""
    c, f = check_pair(codes, factors)
    if int(n_neighbors) < 1:
        raise UntwineError(f"n_neighbors must be at least 1, got {n_neighbors}")
    return _nmi(c, f, discrete_latents, int(n_neighbors), int(seed))


def _nmi(c: np.ndarray, f: np.ndarray, discrete_latents: bool, n_neighbors: int, seed: int) -> np.ndarray:
    if discrete_latents:
        mi = mutual_info_matrix(_label_encode(c), f).T  # [K, D]
    else:
        mi = knn_mutual_info_matrix(_prepare_continuous(c, seed), f, n_neighbors)
    h = discrete_entropy(f)
    return mi / h[:, None]


def active_latents(codes, *, discrete_latents: bool = False) -> np.ndarray:
    """Boolean mask of active latents (range above 1/20 of the largest; discrete: non-constant)."""
    c = np.asarray(codes, dtype=np.float64)
    ranges = c.max(axis=0) - c.min(axis=0)
    if discrete_latents:
        return ranges > 0
    return ranges > np.max(ranges) * ACTIVE_FRACTION


def _rescaled_concentration(m: np.ndarray, n_choices: int) -> float:
    """(mean over rows of max/sum - 1/n) / (1 - 1/n); rows with zero sum count as 1/n
    (``n_choices`` at least 2)."""
    if m.shape[0] == 0:
        return 0.0
    s = m.sum(axis=1)
    ratio = np.full(m.shape[0], 1.0 / n_choices)
    pos = s > 0
    ratio[pos] = m[pos].max(axis=1) / s[pos]
    return float((ratio.mean() - 1.0 / n_choices) / (1.0 - 1.0 / n_choices))


def _infoe(c: np.ndarray, f: np.ndarray, discrete_latents: bool) -> float:
    if discrete_latents:
        lab = _label_encode(c)
        blocks = [np.eye(int(lab[:, j].max()) + 1)[lab[:, j]] for j in range(lab.shape[1])]
        X = np.concatenate(blocks, axis=1)
    else:
        X = _standardize(c)
    scores = []
    with one_blas_thread():
        for k in range(f.shape[1]):
            _, y, counts = np.unique(f[:, k], return_inverse=True, return_counts=True)
            y = y.ravel()
            n_classes = len(counts)
            balanced = len(y) / (n_classes * counts[y])  # class_weight="balanced"
            (proba,) = logistic_regression_proba(X, y, [X], n_classes, c=np.inf, sample_weight=balanced)
            h_pred = _log_loss(proba, y)
            h_null = np.log(n_classes)
            scores.append((h_null - h_pred) / h_null)
    return float(np.mean(scores))


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of labels ``y`` (as scikit-learn's ``log_loss``, clipped at eps)."""
    eps = np.finfo(proba.dtype).eps
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0 - eps))))


def infomec(
    codes,
    factors,
    *,
    discrete_latents: bool = False,
    n_neighbors: int = 10,
    active_fraction: float = ACTIVE_FRACTION,
    seed: int = 0,
) -> dict[str, float]:
    """InfoMEC scores ``infom``, ``infoe``, ``infoc`` of codes ``[N, D]`` against factors ``[N, K]``.

    ``discrete_latents`` selects the plug-in MI estimator and one-hot features
    for InfoE; ``n_neighbors`` is the kNN MI estimator's neighbour count;
    ``active_fraction`` the range fraction that makes a latent active;
    ``seed`` seeds the estimator's tie-breaking noise.  See the module docstring.
    """
    c, f = check_pair(codes, factors)
    if int(n_neighbors) < 1:
        raise UntwineError(f"n_neighbors must be at least 1, got {n_neighbors}")
    if not 0.0 <= float(active_fraction) < 1.0:
        raise UntwineError(f"active_fraction must be in [0, 1), got {active_fraction}")
    nmi = _nmi(c, f, bool(discrete_latents), int(n_neighbors), int(seed))
    ranges = c.max(axis=0) - c.min(axis=0)
    if discrete_latents:
        active = ranges > 0
    else:
        active = ranges > np.max(ranges) * float(active_fraction)
    pruned = nmi[:, active]  # [K, L]
    K, L = f.shape[1], int(active.sum())
    if L == 0:
        infom = infoc = 0.0
    else:
        infom = undefined("infom", SINGLE_FACTOR) if K == 1 else _rescaled_concentration(pruned.T, K)
        infoc = undefined("infoc", SINGLE_LATENT) if L == 1 else _rescaled_concentration(pruned, L)
    return {"infom": infom, "infoe": _infoe(c, f, bool(discrete_latents)), "infoc": infoc}
