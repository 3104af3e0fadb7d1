"""Logistic regression as scikit-learn's ``LogisticRegression`` fits it, faster.

Shared by Explicitness (``C=1``, scikit-learn's defaults) and InfoMEC's InfoE
(``C=inf``, balanced class weights).  The lbfgs solver is scikit-learn's
problem and optimiser settings (scipy L-BFGS-B from zero, ``maxiter``,
``maxls=50``, ``gtol=1e-4``, ``ftol=64 eps``) with the softmax evaluated in
float32; the liblinear one reproduces scikit-learn < 0.22's default.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit

from untwine.errors import UntwineError

__all__ = ["logistic_regression_proba"]


def _lbfgs(fun, size: int, max_iter: int) -> np.ndarray:
    """scikit-learn's lbfgs call: scipy L-BFGS-B from zero with its options."""
    res = optimize.minimize(
        fun,
        np.zeros(size),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    return res.x


def _weights(n: int, sample_weight) -> tuple[np.ndarray, float]:
    """Sample weights normalised by their sum (scikit-learn divides the loss by it), and the sum."""
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(sw.sum())
    return sw / total, total


def _fit_multinomial(x1, y, n_classes, c, max_iter, sample_weight=None):
    """Softmax regression as scikit-learn's lbfgs solver fits it.

    The ``[N, classes]`` logits, exponentials and the gradient product are
    computed in float32 (numpy's float32 ``exp`` is vectorised, float64 often
    is not); the optimiser runs in float64.  Probabilities agree with
    scikit-learn's to about 1e-6.
    """
    n, p = x1.shape
    sw, total = _weights(n, sample_weight)
    reg = 1.0 / (c * total)
    rows = np.arange(n)
    x32 = x1.astype(np.float32)
    sw32 = sw.astype(np.float32)
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
        loss = np.dot(sw, np.log(z) - s_true) + 0.5 * reg * np.sum(w[:, :-1] ** 2)
        s *= (sw / z).astype(np.float32)[:, None]
        s[rows, y] -= sw32
        grad = (s.T @ x32).astype(np.float64)
        grad[:, :-1] += reg * w[:, :-1]
        return loss, grad.ravel()

    return _lbfgs(fun, n_classes * p, max_iter).reshape(n_classes, p)


def _fit_binary(x1, y, c, max_iter, sample_weight=None):
    n, p = x1.shape
    sw, total = _weights(n, sample_weight)
    reg = 1.0 / (c * total)
    t = y.astype(np.float64)

    def fun(theta):
        s = x1 @ theta
        # log(1 + exp(s)) - t s
        loss = np.dot(sw, -log_expit(s) + (1.0 - t) * s) + 0.5 * reg * np.sum(theta[:-1] ** 2)
        grad = x1.T @ (sw * (expit(s) - t))
        grad[:-1] += reg * theta[:-1]
        return loss, grad

    return _lbfgs(fun, p, max_iter)


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
    x_train, y_train, x_eval_list, n_classes, *, c=1.0, max_iter=100, classifier: str = "lbfgs", sample_weight=None
):
    """Fit ``LogisticRegression(C=c)`` and return class probabilities.

    ``y_train`` holds labels ``0..n_classes-1``; returns one ``[N, n_classes]``
    probability array per array of ``x_eval_list``.  ``classifier`` is
    ``"lbfgs"`` (scikit-learn >= 0.22 defaults; ``c=np.inf`` for no penalty,
    ``sample_weight`` as in ``fit``) or ``"liblinear_ovr"`` (scikit-learn < 0.22
    defaults, unweighted).
    """
    x1 = np.hstack([x_train, np.ones((x_train.shape[0], 1))])
    out = []
    if classifier == "liblinear_ovr":
        if sample_weight is not None:
            raise UntwineError("the liblinear_ovr classifier takes no sample weights")
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
        theta = _fit_binary(x1, y_train, c, max_iter, sample_weight)
        for x in x_eval_list:
            p1 = expit(x @ theta[:-1] + theta[-1])
            out.append(np.stack([1.0 - p1, p1], axis=1))
        return out
    w = _fit_multinomial(x1, y_train, n_classes, c, max_iter, sample_weight)
    for x in x_eval_list:
        s = x @ w[:, :-1].T + w[:, -1]
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        out.append(e / e.sum(axis=1, keepdims=True))
    return out
