"""DCI: disentanglement, completeness and informativeness.

Reference: Eastwood & Williams, "A Framework for the Quantitative Evaluation of
Disentangled Representations", ICLR 2018; disentanglement_lib
``evaluation/metrics/dci.py`` (``compute_dci`` / ``_compute_dci``,
``compute_importance_gbt``, ``disentanglement``, ``completeness``).

Definition (as in disentanglement_lib)
--------------------------------------
For every factor ``k`` a gradient-boosted-trees classifier predicts ``v_k``
from all codes.  Its impurity-based feature importances (total squared-error
reduction of the fitted gradients, normalised to sum to one) form column ``k``
of the importance matrix ``R`` ``[D, K]``.  Then

* disentanglement = sum_j rho_j (1 - H_K(R[j, :] / sum R[j, :])), with
  ``rho_j = sum_k R[j, k] / sum R`` (entropy in base K, ``1e-11`` added to the
  rows as disentanglement_lib does);
* completeness = sum_k rho_k (1 - H_D(R[:, k] / sum R[:, k])), weights
  ``rho_k`` the column sums;
* informativeness_train / _test = mean over factors of the classifier's
  accuracy on the train / test split (the model is fitted on train).

Estimators
----------
``estimator="gbt"`` is disentanglement_lib's estimator: one
``sklearn.ensemble.GradientBoostingClassifier()`` with default settings (100
stages, learning rate 0.1, depth-3 regression trees, multinomial deviance) per
factor, seeded with ``random_state=seed`` (disentanglement_lib leaves it
unseeded; the seed only breaks ties between equally good splits).  About 5
minutes on one core at 10000/5000 points with 10-D codes and dSprites-like
factors (3, 6, 40, 32, 32 classes).

``estimator="fast"`` (default) runs *the same boosting algorithm*, written
here with every class of a factor boosted at once on histogram-binned codes:
the same initialisation (log class priors), the same negative gradients
``y_k - p_k``, depth-3 least-squares regression trees grown on them
(best split = largest squared-error reduction, min one sample per leaf, pure
nodes are leaves), the same Newton leaf values (with scikit-learn's
``(K-1)/K`` factor for more than two classes; binary factors use one logistic
tree per stage), and the same importance (squared-error reductions summed over
all trees, normalised).  The differences are (1) split thresholds are
restricted to the ``n_bins`` quantile edges of each code column on the train
split (exact when a column has fewer distinct values), and (2) the number of
stages / learning rate given in ``FAST_SETTINGS``.  With unbinned codes and the
reference stages it reproduces scikit-learn's trees (verified in
``tests/test_metrics_dci.py`` to the extent of tie-breaking).

Measured agreement of "fast" with "gbt": see ``FAST_AGREEMENT`` below and
``benchmarks/dci_estimators.py`` (writes ``benchmarks/results/dci_estimators.json``).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from untwine._checks import as_codes, as_factors, check_pair, same_rows
from untwine.errors import UntwineError

__all__ = ["dci", "importance_matrix", "disentanglement", "completeness", "ESTIMATORS", "FAST_SETTINGS"]

#: the estimators :func:`dci` accepts
ESTIMATORS: tuple[str, ...] = ("fast", "gbt")

#: settings of the "fast" estimator (reference GBT: 100 stages, rate 0.1, depth 3, unbinned)
FAST_SETTINGS: dict = {"n_stages": 100, "learning_rate": 0.1, "max_depth": 3, "n_bins": 64}

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- scores
def _entropy_score(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (given base) of each column of ``p`` (+1e-11, normalised)."""
    return 1.0 - scipy.stats.entropy(p + 1e-11, base=base)


def disentanglement(R: np.ndarray) -> float:
    """Disentanglement of an importance matrix ``R`` ``[D, K]`` (codes x factors)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[1] == 1:  # entropy in base 1 is undefined: one factor, nothing to mix
        per_code = np.ones(R.shape[0])
    else:
        per_code = _entropy_score(R.T, R.shape[1])
    W = R if R.sum() > 0 else np.ones_like(R)
    weight = W.sum(axis=1) / W.sum()
    return float(np.sum(per_code * weight))


def completeness(R: np.ndarray) -> float:
    """Completeness of an importance matrix ``R`` ``[D, K]`` (codes x factors)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[0] == 1:
        per_factor = np.ones(R.shape[1])
    else:
        per_factor = _entropy_score(R, R.shape[0])
    W = R if R.sum() > 0 else np.ones_like(R)
    weight = W.sum(axis=0) / W.sum()
    return float(np.sum(per_factor * weight))


# --------------------------------------------------------------------------- fast GBT
def _bin_codes(x_train: np.ndarray, x_test: np.ndarray, n_bins: int):
    """Quantile-bin each column; returns (train bins, test bins, bins per column).

    A column with at most ``n_bins`` distinct train values keeps all of them
    (edges at the midpoints, exactly scikit-learn's candidate thresholds);
    otherwise the edges are midpoints next to ``n_bins - 1`` quantiles.
    Bin ``b`` holds the values ``x <= edge[b]`` above ``edge[b-1]``.
    """
    D = x_train.shape[1]
    btr = np.empty(x_train.shape, dtype=np.int64)
    bte = np.empty(x_test.shape, dtype=np.int64)
    n_out = 1
    for j in range(D):
        col = x_train[:, j]
        u = np.unique(col)
        if len(u) <= n_bins:
            edges = (u[1:] + u[:-1]) / 2
        else:
            q = np.quantile(col, np.linspace(0.0, 1.0, n_bins + 1)[1:-1], method="inverted_cdf")
            pos = np.searchsorted(u, np.unique(q), side="right")
            pos = pos[pos < len(u)]
            edges = np.unique((u[pos - 1] + u[pos]) / 2)
        btr[:, j] = np.searchsorted(edges, col, side="left")
        bte[:, j] = np.searchsorted(edges, x_test[:, j], side="left")
        n_out = max(n_out, len(edges) + 1)
    return btr, bte, n_out


def _route(bx: np.ndarray, feats: list, thr: list, T: int) -> np.ndarray:
    """Leaf index of every row in each of the ``T`` trees of one stage."""
    nd = np.zeros((bx.shape[0], T), dtype=np.int64)
    tr = np.arange(T)[None, :]
    for f_l, b_l in zip(feats, thr):
        nd = 2 * nd + (np.take_along_axis(bx, f_l[tr, nd], 1) > b_l[tr, nd])
    return nd


def _boost(btr, y, bte, B, *, n_stages, learning_rate, max_depth):
    """Gradient boosting (scikit-learn's algorithm) on binned codes for one factor.

    ``y`` holds classes ``0..K-1`` (all present in train).  Returns the
    normalised importances ``[D]`` and the predicted classes on train and test.
    """
    N, D = btr.shape
    K = int(y.max()) + 1
    binary = K == 2
    T = 1 if binary else K
    prior = np.bincount(y, minlength=K) / N
    if binary:
        Y = (y == 1).astype(np.float64)[:, None]
        raw0 = np.array([np.log(prior[1] / prior[0])])
        factor = 1.0
    else:
        Y = np.zeros((N, K))
        Y[np.arange(N), y] = 1.0
        raw0 = np.log(np.clip(prior, _EPS, 1 - _EPS))
        factor = (K - 1) / K
    raw = np.tile(raw0, (N, 1))
    raw_te = np.tile(raw0, (bte.shape[0], 1))
    tr = np.arange(T)[None, :]
    col_off = (np.arange(D) * B)[None, :] + btr  # [N, D] bin index within one node block
    L = 2**max_depth
    imp = np.zeros(D)
    for _ in range(n_stages):
        if binary:
            P = 1.0 / (1.0 + np.exp(-raw))
        else:
            P = np.exp(raw - raw.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
        G = Y - P  # negative gradient [N, T]
        G2 = G * G
        nid = np.zeros((N, T), dtype=np.int64)
        feats, thr = [], []
        Gw = np.repeat(G, D, axis=1).ravel()  # weights laid out as [N, T, D]
        for level in range(max_depth):
            nn = 2**level
            node = tr * nn + nid  # [N, T]
            idx = ((node * (D * B))[:, :, None] + col_off[:, None, :]).ravel()
            size = T * nn * D * B
            sg = np.bincount(idx, weights=Gw, minlength=size).reshape(T, nn, D, B)
            sc = np.bincount(idx, minlength=size).reshape(T, nn, D, B).astype(np.float64)
            cg = np.cumsum(sg, axis=-1)[..., :-1]
            cc = np.cumsum(sc, axis=-1)[..., :-1]
            tg = sg[:, :, 0, :].sum(-1)
            tc = sc[:, :, 0, :].sum(-1)
            rg = tg[..., None, None] - cg
            rc = tc[..., None, None] - cc
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = cg * cg / cc + rg * rg / rc - (tg * tg / tc)[..., None, None]
            gain = np.where((cc > 0) & (rc > 0), gain, -np.inf).reshape(T, nn, D * (B - 1))
            best = gain.argmax(axis=-1)
            bgain = np.take_along_axis(gain, best[..., None], -1)[..., 0]
            sq = np.bincount(node.ravel(), weights=G2.ravel(), minlength=T * nn).reshape(T, nn)
            with np.errstate(divide="ignore", invalid="ignore"):
                sse = sq - tg * tg / tc  # node impurity x n
            split = np.isfinite(bgain) & (tc > 1) & (sse > _EPS * tc)
            bf = np.where(split, best // (B - 1), 0)
            bb = np.where(split, best % (B - 1), B)  # B: no split, every row goes left
            np.add.at(imp, bf[split], np.maximum(bgain[split], 0.0))
            feats.append(bf)
            thr.append(bb)
            nid = 2 * nid + (np.take_along_axis(btr, bf[tr, nid], 1) > bb[tr, nid])
        li = (tr * L + nid).ravel()
        num = np.bincount(li, weights=G.ravel(), minlength=T * L)
        den = np.bincount(li, weights=(P[:, :T] * (1.0 - P[:, :T])).ravel(), minlength=T * L)
        safe = np.abs(den) >= 1e-150
        val = np.zeros(T * L)
        val[safe] = factor * num[safe] / den[safe]
        val = val.reshape(T, L)
        raw += learning_rate * val[tr, nid]
        raw_te += learning_rate * val[tr, _route(bte, feats, thr, T)]
    s = imp.sum()
    if s > 0:
        imp = imp / s
    if binary:
        return imp, (raw[:, 0] > 0).astype(np.int64), (raw_te[:, 0] > 0).astype(np.int64)
    return imp, raw.argmax(axis=1), raw_te.argmax(axis=1)


def _fast_factor(btr, bte, B, y_tr, y_te, settings):
    classes, y = np.unique(y_tr, return_inverse=True)
    imp, p_tr, p_te = _boost(btr, y.astype(np.int64), bte, B, **settings)
    return imp, float(np.mean(classes[p_tr] == y_tr)), float(np.mean(classes[p_te] == y_te))


def _gbt_factor(x_tr, x_te, y_tr, y_te, seed):
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed)
    model.fit(x_tr, y_tr)
    imp = np.abs(model.feature_importances_)
    return imp, float(np.mean(model.predict(x_tr) == y_tr)), float(np.mean(model.predict(x_te) == y_te))


# --------------------------------------------------------------------------- public API
def _validate(codes_train, factors_train, codes_test, factors_test, estimator):
    if estimator not in ESTIMATORS:
        raise UntwineError(f"unknown DCI estimator {estimator!r}; choose one of: {', '.join(ESTIMATORS)}")
    ctr, ftr = check_pair(codes_train, factors_train, codes_name="codes_train", factors_name="factors_train")
    # a test split may legitimately show a single value of a factor
    cte = as_codes(codes_test, "codes_test")
    fte = as_factors(factors_test, "factors_test", allow_constant=True)
    same_rows(cte, fte, "codes_test", "factors_test")
    if cte.shape[1] != ctr.shape[1]:
        raise UntwineError(f"codes_test has {cte.shape[1]} columns but codes_train has {ctr.shape[1]}; they must match")
    if fte.shape[1] != ftr.shape[1]:
        raise UntwineError(
            f"factors_test has {fte.shape[1]} columns but factors_train has {ftr.shape[1]}; they must match"
        )
    return ctr, ftr, cte, fte


def importance_matrix(
    codes_train, factors_train, codes_test, factors_test, *, estimator: str = "fast", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance matrix ``R`` ``[D, K]`` and per-factor train / test accuracies ``[K]``.

    Column ``k`` of ``R`` holds the normalised feature importances of the
    classifier that predicts factor ``k`` from all codes (see the module
    docstring for the estimators).
    """
    ctr, ftr, cte, fte = _validate(codes_train, factors_train, codes_test, factors_test, estimator)
    D, K = ctr.shape[1], ftr.shape[1]
    R = np.zeros((D, K))
    acc_tr = np.zeros(K)
    acc_te = np.zeros(K)
    if estimator == "fast":
        btr, bte, B = _bin_codes(ctr, cte, int(FAST_SETTINGS["n_bins"]))
        settings = {k: v for k, v in FAST_SETTINGS.items() if k != "n_bins"}
        for k in range(K):
            R[:, k], acc_tr[k], acc_te[k] = _fast_factor(btr, bte, B, ftr[:, k], fte[:, k], settings)
    else:
        for k in range(K):
            R[:, k], acc_tr[k], acc_te[k] = _gbt_factor(ctr, cte, ftr[:, k], fte[:, k], int(seed))
    return R, acc_tr, acc_te


def dci(
    codes_train, factors_train, codes_test, factors_test, *, estimator: str = "fast", seed: int = 0
) -> dict[str, float]:
    """DCI scores: ``dci_disentanglement``, ``dci_completeness``,
    ``dci_informativeness_train`` and ``dci_informativeness_test``.

    ``codes_*`` are ``[N, D]`` floats, ``factors_*`` ``[N, K]`` integer
    classes; the classifiers are fitted on the train split.  ``estimator`` is
    ``"fast"`` (default) or ``"gbt"`` (disentanglement_lib's, minutes).
    ``seed`` seeds the reference estimator (the fast one is deterministic).
    """
    R, acc_tr, acc_te = importance_matrix(
        codes_train, factors_train, codes_test, factors_test, estimator=estimator, seed=seed
    )
    return {
        "dci_disentanglement": disentanglement(R),
        "dci_completeness": completeness(R),
        "dci_informativeness_train": float(np.mean(acc_tr)),
        "dci_informativeness_test": float(np.mean(acc_te)),
    }
