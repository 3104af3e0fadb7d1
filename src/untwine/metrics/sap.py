"""Separated Attribute Predictability (SAP).

Reference: Kumar, Sattigeri & Balakrishnan, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018, Sec. 3;
disentanglement_lib ``evaluation/metrics/sap_score.py`` (``compute_sap``,
``_compute_sap``, ``compute_score_matrix``, ``compute_avg_diff_top_two``).

Definition (as in disentanglement_lib): a score matrix ``S[j, k]`` rates how
well code ``j`` alone predicts factor ``k``; SAP is the mean over factors of
the gap between the two largest scores over codes.

* discrete factors (the default, ``continuous_factors=False``): ``S[j, k]`` is
  the test accuracy of a linear SVM fitted on the one-dimensional code ``z_j``
  of the training split -- scikit-learn's ``LinearSVC(C=0.01,
  class_weight="balanced")``: squared hinge loss, L2 penalty on weight *and*
  intercept, one-vs-rest for more than two classes (positives weighted by
  their balanced class weight, the rest by 1), binary problems with both
  classes weighted.  untwine solves exactly these strictly convex
  two-parameter problems with a vectorised finite Newton method on sorted
  prefix sums, all classes of all factors at once per code, instead of one
  liblinear fit per (code, factor) pair.
* continuous factors: ``S[j, k]`` is the squared Pearson correlation of
  ``z_j`` and ``v_k`` on the training split (0 for codes with variance below
  1e-12); the test split is not used.

Defaults (disentanglement_lib ``unsupervised_study_v1``): 10000 training and
5000 test points, ``continuous_factors=False``.  Requires at least two code
dimensions.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import as_codes, check_train_test, same_rows
from untwine.errors import UntwineError

__all__ = ["sap", "sap_score_matrix", "svm_1d_ovr"]

_SVM_C = 0.01


class _Prefix:
    """Prefix sums of ``1, x, x^2`` per class, in increasing order of ``x``.

    ``total(r)`` sums over the ``r`` smallest samples; ``klass(g, r)`` over the
    samples of class ``g`` among them.  Samples are keyed ``g * (n + 1) +
    rank`` (rank = position in sorted order) so one ``searchsorted`` answers
    every (class, position) query.
    """

    def __init__(self, x_sorted, glabels_sorted, n_rows):
        n = x_sorted.shape[0]
        self.n = n
        self.x = x_sorted
        cols = [np.ones(n), x_sorted, x_sorted * x_sorted]
        self.tot = [np.concatenate([[0.0], np.cumsum(col)]) for col in cols]
        m = glabels_sorted.shape[0]
        ranks = np.tile(np.arange(n, dtype=np.int64), m)
        flat = glabels_sorted.reshape(-1)
        keys = flat * (n + 1) + ranks
        # rows are already in rank order: a stable sort by class (radix sort
        # for small class counts) orders the keys
        small = flat.astype(np.int16) if n_rows < 2**15 else flat
        order = np.argsort(small, kind="stable")
        self.keys = keys[order]
        r = ranks[order]
        self.cum = [np.concatenate([[0.0], np.cumsum(col[r])]) for col in cols]
        self.start = np.searchsorted(self.keys, np.arange(n_rows, dtype=np.int64) * (n + 1))

    def total(self, r):
        return [t[r] for t in self.tot]

    def klass(self, g, r):
        idx = np.searchsorted(self.keys, g * (self.n + 1) + r)
        s = self.start[g]
        return [c[idx] - c[s] for c in self.cum]


def _objective(w, b, pre, rows, pos_w, neg_w):
    """Objective, gradient and Hessian of the weighted squared-hinge problems.

    Problem ``p`` minimises ``0.5 (w^2 + b^2) + sum_i c_i max(0, 1 - y_i (w x_i
    + b))^2`` with positives = class ``rows[p]`` (``c_i = pos_w[p]``) and
    negatives = every other sample (``c_i = neg_w[p]``).  Sums over the
    samples with a positive hinge are read off the prefix sums: the active
    positives and negatives are each a run of the samples sorted by ``x``.
    """
    n = pre.n
    xs = pre.x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tp = (1.0 - b) / w  # positives active where w*x + b < 1
        tn = (-1.0 - b) / w  # negatives active where w*x + b > -1
    gt = w > 0
    lt = w < 0
    zero = ~(gt | lt)
    tp = np.where(zero, 0.0, tp)
    tn = np.where(zero, 0.0, tn)
    all_p = np.where(b < 1.0, n, 0)
    all_n = np.where(b > -1.0, n, 0)
    lo_p = np.where(lt, np.searchsorted(xs, tp, side="right"), 0)
    hi_p = np.where(gt, np.searchsorted(xs, tp, side="left"), np.where(lt, n, all_p))
    lo_n = np.where(gt, np.searchsorted(xs, tn, side="right"), 0)
    hi_n = np.where(lt, np.searchsorted(xs, tn, side="left"), np.where(gt, n, all_n))
    ph = pre.klass(rows, hi_p)
    pl = pre.klass(rows, lo_p)
    a0, a1, a2 = (pos_w * (h - l) for h, l in zip(ph, pl))
    nh = pre.klass(rows, hi_n)
    nl = pre.klass(rows, lo_n)
    th = pre.total(hi_n)
    tl = pre.total(lo_n)
    b0, b1, b2 = (neg_w * ((t1 - t0) - (h - l)) for t1, t0, h, l in zip(th, tl, nh, nl))
    u = 1.0 - b
    v = 1.0 + b
    f = 0.5 * (w * w + b * b) + a0 * u * u - 2 * w * u * a1 + w * w * a2 + b0 * v * v + 2 * w * v * b1 + w * w * b2
    gw = w + 2 * (-u * a1 + w * a2 + v * b1 + w * b2)
    gb = b + 2 * (-u * a0 + w * a1 + v * b0 + w * b1)
    hww = 1 + 2 * (a2 + b2)
    hwb = 2 * (a1 + b1)
    hbb = 1 + 2 * (a0 + b0)
    return f, gw, gb, hww, hwb, hbb


def _newton(pre, rows, pos_w, neg_w, max_iter: int = 100):
    """Minimise all problems at once (Newton steps, Armijo backtracking)."""
    m = rows.shape[0]
    w = np.zeros(m)
    b = np.zeros(m)
    f, gw, gb, hww, hwb, hbb = _objective(w, b, pre, rows, pos_w, neg_w)
    gnorm0 = np.hypot(gw, gb)
    todo = np.ones(m, dtype=bool)
    for _ in range(max_iter):
        todo &= np.hypot(gw, gb) > 1e-11 * np.maximum(gnorm0, 1.0)
        if not todo.any():
            break
        idx = np.nonzero(todo)[0]
        det = hww[idx] * hbb[idx] - hwb[idx] ** 2
        dw = -(hbb[idx] * gw[idx] - hwb[idx] * gb[idx]) / det
        db = -(hww[idx] * gb[idx] - hwb[idx] * gw[idx]) / det
        slope = gw[idx] * dw + gb[idx] * db
        step = np.ones(idx.shape[0])
        pending = np.ones(idx.shape[0], dtype=bool)
        new = [np.empty(idx.shape[0]) for _ in range(6)]
        for _ls in range(60):
            pi = np.nonzero(pending)[0]
            sub = idx[pi]
            res = _objective(
                w[sub] + step[pi] * dw[pi], b[sub] + step[pi] * db[pi], pre, rows[sub], pos_w[sub], neg_w[sub]
            )
            ok = res[0] <= f[sub] + 1e-4 * step[pi] * slope[pi] + 1e-13 * np.abs(f[sub])
            for t, val in enumerate(res):
                new[t][pi[ok]] = val[ok]
            pending[pi[ok]] = False
            if not pending.any():
                break
            step[pending] *= 0.5
        if pending.any():  # no decrease possible: optimal up to rounding
            todo[idx[pending]] = False
        acc = ~pending
        ai = idx[acc]
        w[ai] += step[acc] * dw[acc]
        b[ai] += step[acc] * db[acc]
        f[ai], gw[ai], gb[ai], hww[ai], hwb[ai], hbb[ai] = (arr[acc] for arr in new)
    return w, b


def svm_1d_ovr(x, label_sets, n_classes, c: float = _SVM_C):
    """Fit ``LinearSVC(C=c, class_weight="balanced")`` to one feature, many targets.

    ``x`` is the ``[N]`` feature; ``label_sets`` a list of ``[N]`` label
    arrays with values ``0..n_classes[k]-1`` (every class present).  Returns,
    per target, ``(weights, intercepts)`` arrays of length ``n_classes[k]``
    (one-vs-rest) or length 1 for binary targets (positive class 1), the exact
    minimisers of liblinear's primal problem (L2-regularised squared hinge,
    intercept regularised as a unit feature).
    """
    if not label_sets:
        return []
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    order = np.argsort(x, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(n_classes)]).astype(np.int64)
    glabels = np.empty((len(label_sets), n), dtype=np.int64)
    rows, pos_w, neg_w, owner = [], [], [], []
    for k, (lab, nc) in enumerate(zip(label_sets, n_classes)):
        glabels[k] = offsets[k] + lab[order]
        cw = n / (nc * np.bincount(lab, minlength=nc).astype(np.float64))
        if nc == 2:
            rows.append([offsets[k] + 1])
            pos_w.append([c * cw[1]])
            neg_w.append([c * cw[0]])
            owner.append([k])
        else:
            rows.append(offsets[k] + np.arange(nc))
            pos_w.append(c * cw)
            neg_w.append(np.full(nc, c))
            owner.append(np.full(nc, k))
    pre = _Prefix(x[order], glabels, int(offsets[-1]))
    w, b = _newton(pre, np.concatenate(rows).astype(np.int64), np.concatenate(pos_w), np.concatenate(neg_w))
    owner_a = np.concatenate(owner)
    return [(w[owner_a == k], b[owner_a == k]) for k in range(len(label_sets))]


def _encode(train_col, test_col):
    classes, lab = np.unique(train_col, return_inverse=True)
    pos = np.clip(np.searchsorted(classes, test_col), 0, classes.shape[0] - 1)
    test_lab = np.where(classes[pos] == test_col, pos, -1)
    return lab.reshape(-1), test_lab, classes.shape[0]


def sap_score_matrix(codes_train, factors_train, codes_test, factors_test, *, continuous_factors=False):
    """The ``[D, K]`` SAP score matrix (validated float/int arrays expected)."""
    d = codes_train.shape[1]
    k = factors_train.shape[1]
    if continuous_factors:
        zc = codes_train - codes_train.mean(axis=0)
        yc = factors_train - factors_train.mean(axis=0)
        dof = codes_train.shape[0] - 1
        cov = zc.T @ yc / dof
        var_z = np.sum(zc * zc, axis=0) / dof
        var_y = np.sum(yc * yc, axis=0) / dof
        with np.errstate(divide="ignore", invalid="ignore"):
            score = cov**2 / (var_z[:, None] * var_y[None, :])
        score[var_z <= 1e-12, :] = 0.0
        return score
    enc = [_encode(factors_train[:, j], factors_test[:, j]) for j in range(k)]
    labels = [e[0] for e in enc]
    n_classes = [e[2] for e in enc]
    score = np.zeros((d, k))
    for i in range(d):
        fits = svm_1d_ovr(codes_train[:, i], labels, n_classes)
        xt = codes_test[:, i]
        for j, (w, b) in enumerate(fits):
            if n_classes[j] == 2:
                pred = (w[0] * xt + b[0] > 0).astype(np.int64)
            else:
                pred = np.argmax(w[:, None] * xt[None, :] + b[:, None], axis=0)
            score[i, j] = np.mean(pred == enc[j][1])
    return score


def sap(codes_train, factors_train, codes_test, factors_test, *, continuous_factors: bool = False) -> dict[str, float]:
    """SAP score; returns ``{"sap": value}`` in ``[0, 1]``.

    Discrete factors (default): SVM accuracies fitted on the train split and
    measured on the test split.  ``continuous_factors=True``: squared
    correlations on the train split (factors may then be real-valued; the
    test split is validated but, as in disentanglement_lib, not used).
    """
    if continuous_factors:
        zt = as_codes(codes_train, "codes_train")
        yt = as_codes(factors_train, "factors_train")
        same_rows(zt, yt, "codes_train", "factors_train")
        zs = as_codes(codes_test, "codes_test")
        ys = as_codes(factors_test, "factors_test")
        same_rows(zs, ys, "codes_test", "factors_test")
        for j in range(yt.shape[1]):
            if np.all(yt[:, j] == yt[0, j]):
                raise UntwineError(f"factors_train: factor {j} takes a single value ({yt[0, j]}); it carries no information")
        if zs.shape[1] != zt.shape[1] or ys.shape[1] != yt.shape[1]:
            raise UntwineError(
                f"test split has {zs.shape[1]} code / {ys.shape[1]} factor columns but the train split "
                f"{zt.shape[1]} / {yt.shape[1]}; they must match"
            )
    else:
        zt, yt, zs, ys = check_train_test(codes_train, factors_train, codes_test, factors_test)
    if zt.shape[1] < 2:
        raise UntwineError(f"SAP needs at least 2 code dimensions, got {zt.shape[1]}")
    score = sap_score_matrix(zt, yt, zs, ys, continuous_factors=continuous_factors)
    top = np.sort(score, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2]))}
