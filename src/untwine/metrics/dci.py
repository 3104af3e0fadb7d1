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

With a single factor the entropy in base K = 1 is undefined (disentanglement_lib's gives
NaN): every code trivially "concentrates" on the one factor, and a conventional 1.0
(untwine's earlier choice) carries no information.  Disentanglement is then NaN, with a
warning, written as ``null`` and listed under ``_undefined``; completeness likewise for a
single code.

Estimators
----------
``estimator="gbt"`` is disentanglement_lib's estimator: one
``sklearn.ensemble.GradientBoostingClassifier()`` with default settings (100
stages, learning rate 0.1, depth-3 regression trees, multinomial deviance) per
factor, seeded with ``random_state=seed`` (disentanglement_lib leaves it
unseeded; the seed only breaks ties between equally good splits).  About 7
minutes on one core at 10000/5000 points with 10-D codes and dSprites-like
factors (3, 6, 40, 32, 32 classes).

``estimator="fast"`` (default) fits the same model class, multinomial
gradient-boosted depth-3 trees with 100 rounds at learning rate 0.1, with
LightGBM's histogram algorithm (511 bins per code, Newton leaf values, leaves
down to one sample, no regularisation, ``num_leaves=8``), and computes the
importance exactly as scikit-learn defines it, on LightGBM's trees: the
squared-error reduction of the fitted residuals at every split on a code,
summed over all trees and normalised (LightGBM's own "gain" importance weights
splits by the hessian and overstates codes that split already-fitted samples:
it disagreed with "gbt" by up to 0.07 on D).  The accuracies are read from the
scores LightGBM keeps for the training and test sets while boosting (its
``multi_error``/``binary_error`` metric; an exact tie for the top score counts
as an error), so the trees are never evaluated a second time.  Each LightGBM
fit is single-threaded (its OpenMP threads spin and slow to a crawl when the
cores are shared); ``n_jobs`` factors (default: all) are fitted at once in threads instead.

Codes that carry the same information (redundant codes): two codes whose training
values are in the same order (equal ranks, or exactly reversed ranks - one code a
monotone function of the other, a duplicate in particular) offer every split with
exactly the same gain.  scikit-learn visits the features in a fresh random order at
every node and keeps the first best split, so such ties go to each of the tied codes
alike and, in expectation, their importance is shared equally; LightGBM breaks exact
ties by the lower feature index and gave all of it to the first copy (completeness
0.965 against 0.704 for two copies of every factor code).  The same happens to
near-copies (noise of 1e-4 on codes spread over 1): wherever the gaps between points
exceed their differences the two copies offer the same partitions, and on LightGBM's
bins more so (0.78 against 0.71).  The fast estimator therefore groups codes whose
training ranks agree within ``TIE_TOLERANCE = 1/255`` of the number of points (in the
same or the reversed order; :func:`tied_code_groups`), fits one code per group and
shares each group's importance equally among its codes, which is scikit-learn's
expectation, and fewer codes make it faster.  Copies with coarser independent noise are not ties for either
estimator: both then split the importance between the copies by the noise, somewhere
between even and all-to-one, and differ about as two seeds of "gbt" differ.

The 511 bins (255 before): a factor's class boundaries that fall inside a bin cannot be
split on its code, and the few points there were split off on other codes, which
"gbt", with exact thresholds, never does (disentanglement 0.962 against 1.0 for
aligned codes at 255 bins, 0.975 at 511, at the same CPU time at 10000 points).

Agreement with "gbt", measured by ``python benchmarks/dci_estimators.py 2000 1000``
(9 kinds of 10-D codes: aligned, noisy, mixed, partial, random, and the redundant
duplicated, near_copies, redundant, redundant_mixed; factors with 3, 6, 40, 32, 32
classes; ``benchmarks/results/dci_estimators.json``): largest absolute difference
0.034 (disentanglement of the mixed codes), 0.033 on the redundant kinds (before the
grouping and the 511 bins: 0.26, completeness of the duplicated codes); informativeness
within 0.02.  Speed at 10000/5000 points on this
kind of input: about 7.5 CPU-seconds for "fast" against about 7 minutes (421 s) for "gbt".

Where the fast estimator's time goes (10000/5000 points, factors with 3, 6, 40, 32, 32
classes: 113 class trees per round, 11300 trees; ``python benchmarks/dci_floor.py``, quiet
2-core machine, ``benchmarks/results/dci_floor.json``): about 7.5 CPU-seconds, of which the
LightGBM trees take about three quarters, the test scores kept while boosting about an eighth
(predicting afterwards costs more: 0.50 against 0.34 s for the 40-class factor), writing and
parsing the model text for the importances about a twentieth.  A depth-3 tree costs 0.50 ms
at 10000 rows and 10 codes, 0.36 ms at 5000 and 0.28 ms at 2500: about 0.2 ms per tree is
fixed (511-bin histograms and their split search) and 0.03 ms per 1000 rows.  The cheaper
settings measured against "gbt" (largest absolute difference over the nine kinds of
``dci_estimators.py``; the shipped settings: 0.034): 255 bins -7% CPU but 0.055 on the
near-copies; 127 bins -15%, 0.091; 50 rounds at rate 0.2 -44% but 0.37 (it agrees on the
standard case, 0.024, and not on 2000-row data); GOSS and bagging save nothing here and
disagree by 0.60 and 0.57.  So the estimator stays as it is, and about 7.5 CPU-s (3.8 s wall
on two cores) is its floor with LightGBM.  Going below needs one pass over the rows per round
for all of a factor's class trees, with the histograms of all classes built together (a
compiled kernel, not another LightGBM setting).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import sys

import numpy as np

from untwine._checks import check_train_test
from untwine.errors import UntwineError
from untwine.metrics._undefined import SINGLE_FACTOR, SINGLE_LATENT, undefined

__all__ = [
    "dci",
    "importance_matrix",
    "remember_importance",
    "disentanglement",
    "completeness",
    "tied_code_groups",
    "ESTIMATORS",
    "FAST_SETTINGS",
]

#: the estimators :func:`dci` accepts
ESTIMATORS: tuple[str, ...] = ("fast", "gbt")

#: LightGBM parameters of the "fast" estimator: scikit-learn's GradientBoostingClassifier
#: defaults (100 rounds, rate 0.1, depth 3, min 1 sample per leaf, no regularisation)
FAST_SETTINGS: dict = {
    "num_iterations": 100,
    "learning_rate": 0.1,
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 1,
    "min_sum_hessian_in_leaf": 1e-3,
    "lambda_l2": 0.0,
    "max_bin": 511,
}


#: codes whose training ranks agree within this fraction of the points are fitted as one
#: code by the fast estimator (see "Codes that carry the same information" above)
TIE_TOLERANCE = 1.0 / 255


# --------------------------------------------------------------------------- scores
def _entropy_score(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy (given base) of each column of ``p`` (+1e-11, normalised), as
    ``scipy.stats.entropy`` computes it (numpy only: scipy.stats takes a second to import)."""
    q = p + 1e-11
    q = q / q.sum(axis=0, keepdims=True)
    return 1.0 - (-np.sum(q * np.log(q), axis=0)) / np.log(base)


def _average_ranks(codes: np.ndarray) -> np.ndarray:
    """Average ranks 1..n of every column (ties share their mean rank), as
    ``scipy.stats.rankdata(codes, axis=0)``."""
    n, d = codes.shape
    ranks = np.empty((n, d))
    for j in range(d):
        order = np.argsort(codes[:, j], kind="stable")
        s = codes[order, j]
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(s[1:], s[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        ranks[order, j] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def import_lightgbm_without_sklearn():
    """Import LightGBM's core for the fast estimator without the scikit-learn import it tries
    (about half a second of a command's start-up; only the Booster API is used here).

    Only for a process that uses no LightGBM scikit-learn estimators, i.e. the command line:
    LightGBM then believes scikit-learn absent for the rest of the process (scikit-learn
    itself stays importable).  Does nothing when either is imported already.
    """
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # makes ``import sklearn`` fail inside lightgbm.compat
    try:
        import lightgbm  # noqa: F401
    finally:
        del sys.modules["sklearn"]


def disentanglement(R: np.ndarray) -> float:
    """Disentanglement of an importance matrix ``R`` ``[D, K]`` (codes x factors); NaN, with
    a warning, for a single factor (where it is undefined)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[1] == 1:  # entropy in base 1: nothing to concentrate on
        return undefined("dci_disentanglement", SINGLE_FACTOR)
    per_code = _entropy_score(R.T, R.shape[1])
    W = R if R.sum() > 0 else np.ones_like(R)
    weight = W.sum(axis=1) / W.sum()
    return float(np.sum(per_code * weight))


def completeness(R: np.ndarray) -> float:
    """Completeness of an importance matrix ``R`` ``[D, K]`` (codes x factors); NaN, with a
    warning, for a single code (where it is undefined)."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape[0] == 1:  # entropy in base 1: nothing to concentrate on
        return undefined("dci_completeness", SINGLE_LATENT)
    per_factor = _entropy_score(R, R.shape[0])
    W = R if R.sum() > 0 else np.ones_like(R)
    weight = W.sum(axis=0) / W.sum()
    return float(np.sum(per_factor * weight))


# --------------------------------------------------------------------------- estimators
_TREE_KEYS = ("num_leaves", "split_feature", "left_child", "right_child", "leaf_value", "leaf_weight", "leaf_count")


def _tree_fields(model_text: str) -> dict[str, np.ndarray]:
    """The fields of :data:`_TREE_KEYS` of every tree of a LightGBM model string, concatenated."""
    body = model_text.split("\nTree=", 1)[-1].split("\nend of trees", 1)[0]
    found: dict[str, list[str]] = {k: [] for k in _TREE_KEYS}
    for line in body.split("\n"):
        key, _, value = line.partition("=")
        if key in found:
            found[key].append(value)
    return {k: np.array(" ".join(v).split(), dtype=float) for k, v in found.items()}


def _squared_error_importance(model_text: str, n_features: int) -> np.ndarray:
    """scikit-learn's impurity importance, computed on LightGBM's trees.

    For every split, the reduction in squared error of the fitted residuals:
    ``G_L^2 / n_L + G_R^2 / n_R - G^2 / n`` with ``G`` the residual sum and ``n``
    the sample count of each node, summed per code over all trees.  A leaf's
    residual sum is its Newton value times its hessian sum (up to the learning
    rate, a common factor that the normalisation removes); the model is fitted
    from an explicit initial score so that leaves hold Newton steps only.

    All trees are processed at once, split by split from the last: LightGBM
    numbers the splits of a tree in creation order, so a split's children have
    larger numbers than the split itself and are summed before it.
    """
    t = _tree_fields(model_text)
    n_split = t["num_leaves"].astype(np.int64) - 1
    feat = t["split_feature"].astype(np.int64)
    children = (t["left_child"].astype(np.int64), t["right_child"].astype(np.int64))
    # per split: where its tree's splits and leaves start in the concatenated arrays
    split_start = np.repeat(np.cumsum(n_split) - n_split, n_split)
    leaf_start = np.repeat(np.cumsum(n_split + 1) - (n_split + 1), n_split)
    number = np.arange(len(feat)) - split_start
    # residual sum and count of every node: leaves first, then splits (filled below)
    g = np.concatenate([t["leaf_value"] * t["leaf_weight"], np.zeros(len(feat))])
    n = np.concatenate([t["leaf_count"], np.zeros(len(feat))])
    first_split = len(t["leaf_count"])
    imp = np.zeros(n_features)
    for j in range(int(n_split.max(initial=0)) - 1, -1, -1):
        rows = np.flatnonzero(number == j)
        sums = []
        for child in children:
            c = child[rows]
            node = np.where(c < 0, leaf_start[rows] + ~c, first_split + split_start[rows] + c)
            sums.append((g[node], n[node]))
        (g_l, n_l), (g_r, n_r) = sums
        g[first_split + rows], n[first_split + rows] = g_l + g_r, n_l + n_r
        ok = (n_l > 0) & (n_r > 0)
        gain = np.zeros(len(rows))
        gain[ok] = g_l[ok] ** 2 / n_l[ok] + g_r[ok] ** 2 / n_r[ok] - (g_l[ok] + g_r[ok]) ** 2 / (n_l[ok] + n_r[ok])
        imp += np.bincount(feat[rows], weights=gain, minlength=n_features)
    return imp


def _fast_factor(x_tr, x_te, y_tr, y_te, seed):
    import lightgbm

    classes, y = np.unique(y_tr, return_inverse=True)
    binary = len(classes) == 2
    prior = np.bincount(y) / len(y)
    # scikit-learn's initial model: log class priors (log-odds for two classes)
    init = np.log(prior[1] / prior[0]) if binary else np.log(prior)

    def dataset(x, labels, **kw):
        score = np.full(len(labels), init) if binary else np.tile(init, (len(labels), 1))
        return lightgbm.Dataset(x, labels, init_score=score, params=params, **kw)

    params = {
        **FAST_SETTINGS,
        "boost_from_average": False,
        "seed": seed,
        "num_threads": 1,
        "verbosity": -1,
        **({"objective": "binary", "metric": "binary_error"} if binary
           else {"objective": "multiclass", "num_class": len(classes), "metric": "multi_error"}),
    }
    rounds = params.pop("num_iterations")
    train = dataset(x_tr, y)
    booster = lightgbm.Booster(params, train)
    # test rows of classes never seen in training are misclassified by any model
    pos = np.searchsorted(classes, y_te).clip(0, len(classes) - 1)
    seen = classes[pos] == y_te
    if seen.any():
        booster.add_valid(dataset(x_te[seen], pos[seen], reference=train), "test")
    for _ in range(rounds):
        booster.update()
    # accuracies from the scores LightGBM kept while boosting: no second pass over the trees
    acc_tr = 1.0 - booster.eval_train()[0][2]
    acc_te = (1.0 - booster.eval_valid()[0][2]) * seen.mean() if seen.any() else 0.0
    imp = _squared_error_importance(booster.model_to_string(), x_tr.shape[1])
    imp = imp / imp.sum() if imp.sum() > 0 else imp
    return imp, float(acc_tr), float(acc_te)


def tied_code_groups(codes, tolerance: float = 0.0) -> list[np.ndarray]:
    """Groups of code columns that order the points alike: equal or exactly reversed ranks,
    up to ``tolerance`` times the number of points.

    With ``tolerance=0`` every tree split on one code of a group is a split on any other
    with the same gain (copies, monotone transforms), so no gradient-boosting fit can tell
    them apart.  With ``tolerance=1 / max_bin`` the codes also fall into the same
    histogram bins up to one bin (near-copies whose differences are finer than LightGBM's
    bins), where LightGBM sees the same ties.  Returns index arrays in order of their
    first column; a code tied to no other is a group of one.
    """
    codes = np.asarray(codes, dtype=np.float64)
    n, d = codes.shape
    if d < 2 or n == 0:
        return [np.array([j], dtype=np.int64) for j in range(d)]
    ranks = _average_ranks(codes)  # [n, d]
    limit = float(tolerance) * n + 1e-9
    parent = list(range(d))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    probe = np.unique(np.linspace(0, n - 1, min(n, 64)).astype(np.int64))
    finer = np.unique(np.linspace(0, n - 1, min(n, 512)).astype(np.int64))
    top, bottom = ranks.argmax(0), ranks.argmin(0)
    for other in (ranks, n + 1.0 - ranks):  # same order, reversed order
        # screen every pair on a few points, the candidates on more (sparse codes tie at zero on
        # most points), then check the rest on all of them
        pairs = []
        for j0 in range(0, d, 64):
            cols = slice(j0, min(d, j0 + 64))
            gap = np.abs(ranks[probe][:, :, None] - other[probe][:, None, cols]).max(0)  # [d, chunk]
            a, b = np.nonzero(gap <= limit)
            pairs.append(np.stack([a, b + j0])[:, a < b + j0])
        a, b = np.concatenate(pairs, axis=1)
        for ends in (top, bottom):  # each code's highest and lowest point, where the other must be too
            ok = (np.abs(ranks[ends[a], a] - other[ends[a], b]) <= limit) & (np.abs(ranks[ends[b], a] - other[ends[b], b]) <= limit)
            a, b = a[ok], b[ok]
        for rows in (finer, slice(None)):
            r, o = ranks[rows], other[rows]
            step = max(1, (1 << 22) // r.shape[0])
            ok = np.concatenate([np.abs(r[:, a[i : i + step]] - o[:, b[i : i + step]]).max(0) <= limit
                                 for i in range(0, len(a), step)] or [np.zeros(0, bool)])
            a, b = a[ok], b[ok]
        for x, y in zip(a.tolist(), b.tolist()):
            if root(x) != root(y):
                parent[root(y)] = root(x)
    groups: dict[int, list[int]] = {}
    for j in range(d):
        groups.setdefault(root(j), []).append(j)
    return [np.asarray(g, dtype=np.int64) for g in groups.values()]


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
    return check_train_test(codes_train, factors_train, codes_test, factors_test)


def importance_matrix(
    codes_train, factors_train, codes_test, factors_test, *, estimator: str = "fast", seed: int = 0, n_jobs: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance matrix ``R`` ``[D, K]`` and per-factor train / test accuracies ``[K]``.

    Column ``k`` of ``R`` holds the normalised feature importances of the
    classifier that predicts factor ``k`` from all codes (see the module
    docstring for the estimators).
    """
    ctr, ftr, cte, fte = _validate(codes_train, factors_train, codes_test, factors_test, estimator)
    memo = _remembered
    if memo is None:
        return _importance_matrix(ctr, ftr, cte, fte, estimator, seed, n_jobs)
    key = (_digest(ctr, ftr, cte, fte), estimator, int(seed))  # n_jobs changes no value
    if key not in memo:
        memo[key] = _importance_matrix(ctr, ftr, cte, fte, estimator, seed, n_jobs)
    return tuple(a.copy() for a in memo[key])


#: the fits remembered inside :func:`remember_importance` (None outside it)
_remembered: dict | None = None


@contextmanager
def remember_importance():
    """Within this context :func:`importance_matrix` fits each distinct input once: a later
    call with the same arrays and settings gets a copy of the first call's result (``sae
    evaluate`` scores the suite, then draws the importance heatmap of the same rows).
    Everything is forgotten when the outermost context exits."""
    global _remembered
    outer = _remembered
    if outer is None:
        _remembered = {}
    try:
        yield
    finally:
        _remembered = outer


def _digest(*arrays: np.ndarray) -> str:
    import hashlib

    h = hashlib.blake2b(digest_size=20)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _importance_matrix(ctr, ftr, cte, fte, estimator, seed, n_jobs):
    D, K = ctr.shape[1], ftr.shape[1]
    R = np.zeros((D, K))
    acc_tr = np.zeros(K)
    acc_te = np.zeros(K)
    if estimator == "fast":
        # tied codes (see the module docstring): fit one code per group, share its importance
        groups = tied_code_groups(ctr, tolerance=TIE_TOLERANCE)
        reps = np.array([g[0] for g in groups])
        xtr, xte = (ctr, cte) if len(reps) == D else (ctr[:, reps], cte[:, reps])
        # one single-threaded LightGBM fit per factor, ``n_jobs`` factors at a time (LightGBM
        # releases the GIL); by default all at once, so the OS shares the cores among fits of
        # unequal cost (two workers on two cores left one idle while the other fitted two
        # 32-class factors: 4.1-4.8 s against 3.9-4.1 s wall on the standard case)
        workers = max(1, min(int(n_jobs or K), K))
        order = sorted(range(K), key=lambda k: -len(np.unique(ftr[:, k])))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            fits = {k: pool.submit(_fast_factor, xtr, xte, ftr[:, k], fte[:, k], int(seed)) for k in order}
            for k, fit in fits.items():
                imp, acc_tr[k], acc_te[k] = fit.result()
                for g, value in zip(groups, imp):
                    R[g, k] = value / len(g)
    else:
        for k in range(K):
            R[:, k], acc_tr[k], acc_te[k] = _gbt_factor(ctr, cte, ftr[:, k], fte[:, k], int(seed))
    return R, acc_tr, acc_te


def dci(
    codes_train, factors_train, codes_test, factors_test, *, estimator: str = "fast", seed: int = 0, n_jobs: int | None = None
) -> dict[str, float]:
    """DCI scores: ``dci_disentanglement``, ``dci_completeness``,
    ``dci_informativeness_train`` and ``dci_informativeness_test``.

    ``codes_*`` are ``[N, D]`` floats, ``factors_*`` ``[N, K]`` integer
    classes; the classifiers are fitted on the train split.  ``estimator`` is
    ``"fast"`` (default) or ``"gbt"`` (disentanglement_lib's, minutes).
    ``seed`` seeds both estimators; ``n_jobs`` is how many factors the fast
    estimator fits at once (default: all of them, each fit single-threaded).
    """
    R, acc_tr, acc_te = importance_matrix(
        codes_train, factors_train, codes_test, factors_test, estimator=estimator, seed=seed, n_jobs=n_jobs
    )
    return {
        "dci_disentanglement": disentanglement(R),
        "dci_completeness": completeness(R),
        "dci_informativeness_train": float(np.mean(acc_tr)),
        "dci_informativeness_test": float(np.mean(acc_te)),
    }
