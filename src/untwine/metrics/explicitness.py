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
reimplemented in :mod:`untwine.metrics._logistic`.  Its meaning changed with
scikit-learn 0.22, so both are available:

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

import numpy as np

from untwine._checks import check_train_test
from untwine.errors import UntwineError
from untwine.blas import one_blas_thread
from untwine.metrics._logistic import logistic_regression_proba

__all__ = ["explicitness", "logistic_regression_proba", "mean_ovr_auc"]


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
    with one_blas_thread():
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
