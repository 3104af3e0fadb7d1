"""Explicitness.

Reference: Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the
F-Statistic Loss", NeurIPS 2018; disentanglement_lib
``evaluation/metrics/modularity_explicitness.py``
(``compute_modularity_explicitness``, ``explicitness_per_factor``).

Definition (as in disentanglement_lib): codes are standardised with the mean
and standard deviation (``ddof=0``) of the training split.  For every factor a
logistic regression predicting the factor's class from all codes is fitted on
the training split; its class probabilities are scored by ROC-AUC of each
class against the rest (``roc_auc_score`` on the one-hot labels, macro
average), on the training and on the test split.  Explicitness is the mean
over factors.

The classifier is scikit-learn's ``LogisticRegression()`` with its defaults,
reimplemented here.  Its meaning changed with scikit-learn 0.22, so both are
available:

* ``classifier="lbfgs"`` (default; what disentanglement_lib's code computes
  with any scikit-learn >= 0.22, including the pinned >= 1.3): L2 penalty with
  ``C=1`` on the weights (not the intercepts), multinomial (softmax) loss for
  three or more classes and the binary logistic loss for two, minimised with
  L-BFGS (scipy, ``maxiter=100``, ``gtol=1e-4``) from zero, as scikit-learn
  does (the softmax is evaluated in float32 for speed; probabilities agree
  with scikit-learn's to about 1e-6).
* ``classifier="liblinear_ovr"`` (the default of scikit-learn < 0.22, current
  when disentanglement_lib's published numbers were produced): one binary
  logistic regression per class against the rest, L2 penalty ``C=1`` on
  weight *and* intercept (liblinear's unit bias feature), solved exactly by
  Newton's method; class probabilities are the sigmoids normalised to sum to
  one.  On entangled or many-class codes this gives values a few hundredths
  (up to about 0.05) below the default.

ROC-AUCs are computed from ranks (Mann-Whitney statistic, ties counted half).

Deviations, only where disentanglement_lib fails: a constant code column is
left unscaled (it has no standard deviation), test samples of a class unseen
in training count as negatives for every class, and classes absent from a
split are left out of that split's average.

Defaults (disentanglement_lib ``unsupervised_study_v1``): 10000 training and
5000 test points.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit

try:  # installed with scikit-learn; BLAS threads only slow these small products down
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

from untwine._checks import check_train_test
from untwine.errors import UntwineError

__all__ = ["explicitness", "logistic_regression_proba", "mean_ovr_auc"]


def _fit_multinomial(x1, y, n_classes, c, max_iter):
    """Softmax regression as scikit-learn's lbfgs solver fits it.

    The ``[N, classes]`` logits, exponentials and the gradient product are
    computed in float32 (numpy's float32 ``exp`` is vectorised, float64 often
    is not); the optimiser runs in float64.  Probabilities agree with
    scikit-learn's to about 1e-6.
    """
    n, p = x1.shape
    reg = 1.0 / (c * n)
    rows = np.arange(n)
    x32 = x1.astype(np.float32)
    x_norm = float(np.sqrt(np.max(np.sum(x1 * x1, axis=1))))

    def fun(theta):
        w = theta.reshape(n_classes, p)
        s = x32 @ w.T.astype(np.float32)
        s_true = np.einsum("ij,ij->i", x1, w[y])
        if x_norm * float(np.sqrt(np.max(np.sum(w * w, axis=1)))) > 60.0:
            # float32 exp() could overflow: shift each row by its maximum
            top = s.max(axis=1)
            s -= top[:, None]
            s_true = s_true - top
        np.exp(s, out=s)
        z = s.sum(axis=1).astype(np.float64)
        loss = np.mean(np.log(z) - s_true) + 0.5 * reg * np.sum(w[:, :-1] ** 2)
        s *= (1.0 / z).astype(np.float32)[:, None]
        s[rows, y] -= 1.0
        grad = (s.T @ x32).astype(np.float64)
        grad /= n
        grad[:, :-1] += reg * w[:, :-1]
        return loss, grad.ravel()

    res = optimize.minimize(
        fun,
        np.zeros(n_classes * p),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    return res.x.reshape(n_classes, p)


def _fit_binary(x1, y, c, max_iter):
    n, p = x1.shape
    reg = 1.0 / (c * n)
    t = y.astype(np.float64)

    def fun(theta):
        s = x1 @ theta
        # log(1 + exp(s)) - t s
        loss = np.mean(-log_expit(s) + (1.0 - t) * s) + 0.5 * reg * np.sum(theta[:-1] ** 2)
        grad = x1.T @ (expit(s) - t) / n
        grad[:-1] += reg * theta[:-1]
        return loss, grad

    res = optimize.minimize(
        fun,
        np.zeros(p),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    return res.x


def _fit_ovr_liblinear(x1, targets, c, max_iter=100):
    """Exact minimisers of liblinear's L2 logistic problems, one per column of ``targets``.

    Each problem is ``0.5 |theta|^2 + c sum_i log(1 + exp(-y_i theta . x1_i))``
    with ``y = +-1``; the intercept is the last entry of ``theta`` (regularised).
    Newton steps with Armijo backtracking, all problems at once.
    """
    n, p = x1.shape
    m = targets.shape[1]
    sign = np.where(targets, 1.0, -1.0)  # [n, m]
    outer = (x1[:, :, None] * x1[:, None, :]).reshape(n, p * p)
    theta = np.zeros((m, p))

    def value(th):
        marg = sign * (x1 @ th.T)
        return 0.5 * np.sum(th * th, axis=1) - c * np.sum(log_expit(marg), axis=0)

    f = value(theta)
    g0 = None
    for _ in range(max_iter):
        s = x1 @ theta.T
        sig = expit(s)
        grad = theta + c * ((sig - targets).T @ x1)
        gnorm = np.sqrt(np.sum(grad * grad, axis=1))
        if g0 is None:
            g0 = np.maximum(gnorm, 1.0)
        if np.all(gnorm <= 1e-10 * g0):
            break
        hess = (c * (outer.T @ (sig * (1.0 - sig)))).T.reshape(m, p, p) + np.eye(p)
        step = -np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        slope = np.sum(grad * step, axis=1)
        t = np.ones(m)
        for _ls in range(50):
            trial = theta + t[:, None] * step
            ft = value(trial)
            bad = ft > f + 1e-4 * t * slope + 1e-12 * np.abs(f)
            if not bad.any():
                break
            t[bad] *= 0.5
        moved = ~bad
        theta[moved] = trial[moved]
        f[moved] = ft[moved]
        if not moved.any():
            break
    return theta


def logistic_regression_proba(
    x_train, y_train, x_eval_list, n_classes, *, c=1.0, max_iter=100, classifier: str = "lbfgs"
):
    """Fit ``LogisticRegression(C=c)`` and return class probabilities.

    ``y_train`` holds labels ``0..n_classes-1``; returns one ``[N, n_classes]``
    probability array per array of ``x_eval_list``.  ``classifier`` is
    ``"lbfgs"`` (scikit-learn >= 0.22 defaults) or ``"liblinear_ovr"``
    (scikit-learn < 0.22 defaults).
    """
    x1 = np.hstack([x_train, np.ones((x_train.shape[0], 1))])
    out = []
    if classifier == "liblinear_ovr":
        if n_classes == 2:
            theta = _fit_ovr_liblinear(x1, (y_train == 1)[:, None].astype(np.float64), c)
        else:
            theta = _fit_ovr_liblinear(x1, (y_train[:, None] == np.arange(n_classes)).astype(np.float64), c)
        for x in x_eval_list:
            sig = expit(x @ theta[:, :-1].T + theta[:, -1])
            if n_classes == 2:
                out.append(np.hstack([1.0 - sig, sig]))
            else:
                out.append(sig / sig.sum(axis=1, keepdims=True))
        return out
    if classifier != "lbfgs":
        raise UntwineError(f"explicitness: unknown classifier {classifier!r}; use 'lbfgs' or 'liblinear_ovr'")
    if n_classes == 2:
        theta = _fit_binary(x1, y_train, c, max_iter)
        for x in x_eval_list:
            p1 = expit(x @ theta[:-1] + theta[-1])
            out.append(np.stack([1.0 - p1, p1], axis=1))
        return out
    w = _fit_multinomial(x1, y_train, n_classes, c, max_iter)
    for x in x_eval_list:
        s = x @ w[:, :-1].T + w[:, -1]
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        out.append(e / e.sum(axis=1, keepdims=True))
    return out


def mean_ovr_auc(proba, labels):
    """Mean over classes of the ROC-AUC of ``proba[:, c]`` for ``labels == c``.

    Uses the Mann-Whitney statistic (ties count one half).  Classes with no
    positive or no negative sample are left out.
    """
    n, k = proba.shape
    aucs = []
    for cls in range(k):
        pos = labels == cls
        n_pos = int(pos.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        neg_sorted = np.sort(proba[~pos, cls])
        col = proba[pos, cls]
        below = np.searchsorted(neg_sorted, col, side="left")
        not_above = np.searchsorted(neg_sorted, col, side="right")
        aucs.append(float(np.sum(below + not_above)) / (2.0 * n_pos * n_neg))
    if not aucs:
        raise UntwineError("explicitness: a factor has a single class in the evaluated split; ROC-AUC is undefined")
    return float(np.mean(aucs))


def explicitness(
    codes_train, factors_train, codes_test, factors_test, *, classifier: str = "lbfgs"
) -> dict[str, float]:
    """Explicitness on the train and test splits.

    ``classifier``: ``"lbfgs"`` (default) or ``"liblinear_ovr"``, see the module
    docstring.

    Returns ``{"explicitness_train": value, "explicitness_test": value}``, each
    a mean ROC-AUC in ``[0, 1]`` (0.5 = chance).
    """
    zt, yt, zs, ys = check_train_test(codes_train, factors_train, codes_test, factors_test)
    if classifier not in ("lbfgs", "liblinear_ovr"):
        raise UntwineError(f"explicitness: unknown classifier {classifier!r}; use 'lbfgs' or 'liblinear_ovr'")
    mean = zt.mean(axis=0)
    std = zt.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    xt = (zt - mean) / std
    xs = (zs - mean) / std
    with threadpool_limits(1) if threadpool_limits is not None else nullcontext():
        scores = np.array([_factor_aucs(xt, yt[:, k], xs, ys[:, k], classifier) for k in range(yt.shape[1])])
    return {"explicitness_train": float(np.mean(scores[:, 0])), "explicitness_test": float(np.mean(scores[:, 1]))}


def _factor_aucs(xt, y_train, xs, y_test, classifier):
    """Train and test mean ROC-AUC for one factor."""
    classes, lab = np.unique(y_train, return_inverse=True)
    lab = lab.reshape(-1)
    pos = np.clip(np.searchsorted(classes, y_test), 0, classes.shape[0] - 1)
    lab_test = np.where(classes[pos] == y_test, pos, -1)
    p_train, p_test = logistic_regression_proba(xt, lab, [xt, xs], classes.shape[0], classifier=classifier)
    return mean_ovr_auc(p_train, lab), mean_ovr_auc(p_test, lab_test)
