"""Downstream probes for labelled data (real time series): how well codes predict class labels.

Used where a dataset has class labels instead of ground-truth factors (the UCR/UEA
series of :mod:`untwine.data.series`), following the downstream evaluation of Li et
al., "Learning Disentangled Representations for Time Series", arXiv:2105.08179 (2021),
and the linear-probe protocol of representation learning in general.  No
disentanglement_lib counterpart.

:func:`probe_scores` fits on the train codes and reports accuracy on the test codes of
the dataset's own split:

* ``linear_probe_accuracy``: multinomial logistic regression
  (``sklearn.linear_model.LogisticRegression``, L2, ``C = 1``, lbfgs, up to 2000
  iterations) on codes standardised with the train mean and standard deviation;
* ``knn_accuracy``: the ``k``-nearest-neighbour classifier (default ``k = 1``, the
  usual time-series baseline; Euclidean distance on the standardised codes).

:func:`probe_baselines` gives the same scores for the raw series (flattened) and for
PCA of the raw series with as many components as the codes have dimensions (fit on
the train series), the references a learned code should be compared against.
"""

from __future__ import annotations

import warnings

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError


def _labels(y, name: str, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise UntwineError(f"{name}: expected a 1-D array of class labels, got shape {tuple(np.shape(y))}")
    if arr.shape[0] != n:
        raise UntwineError(f"{name} has {arr.shape[0]} labels but the codes have {n} rows; they must match")
    return arr


def probe_scores(codes_train, y_train, codes_test, y_test, *, k: int = 1, C: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Linear-probe and k-NN test accuracy of codes ``[N, D]`` for labels ``[N]`` (see module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    a = as_codes(codes_train, "codes_train")
    b = as_codes(codes_test, "codes_test")
    if a.shape[1] != b.shape[1]:
        raise UntwineError(f"codes_train has {a.shape[1]} columns but codes_test has {b.shape[1]}; they must match")
    ya = _labels(y_train, "y_train", a.shape[0])
    yb = _labels(y_test, "y_test", b.shape[0])
    if len(np.unique(ya)) < 2:
        raise UntwineError("y_train: a single class; probes need at least two")
    if not 1 <= int(k) <= a.shape[0]:
        raise UntwineError(f"k must be between 1 and the number of train rows ({a.shape[0]}), got {k}")
    mu, sd = a.mean(0), a.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    a, b = (a - mu) / sd, (b - mu) / sd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on separable data
        lin = LogisticRegression(C=float(C), max_iter=2000, random_state=int(seed)).fit(a, ya)
    knn = KNeighborsClassifier(n_neighbors=int(k)).fit(a, ya)
    return {
        "linear_probe_accuracy": float(np.mean(lin.predict(b) == yb)),
        "knn_accuracy": float(np.mean(knn.predict(b) == yb)),
    }


def probe_baselines(x_train, y_train, x_test, y_test, num_components: int, *, k: int = 1, seed: int = 0) -> dict[str, dict[str, float]]:
    """:func:`probe_scores` of the raw series (flattened) and of their PCA with ``num_components`` components.

    ``x_train`` / ``x_test``: ``[N, ...]`` arrays (e.g. ``[N, C, T]`` series).  Returns
    ``{"raw": {...}, "pca": {...}}``.
    """
    from sklearn.decomposition import PCA

    xa = np.asarray(x_train, dtype=np.float64).reshape(len(x_train), -1)
    xb = np.asarray(x_test, dtype=np.float64).reshape(len(x_test), -1)
    if xa.shape[1] != xb.shape[1]:
        raise UntwineError(f"x_train has {xa.shape[1]} values per row but x_test has {xb.shape[1]}; they must match")
    n = int(num_components)
    if not 1 <= n <= min(xa.shape):
        raise UntwineError(f"num_components must be between 1 and {min(xa.shape)}, got {num_components}")
    pca = PCA(n_components=n, random_state=int(seed)).fit(xa)
    return {
        "raw": probe_scores(xa, y_train, xb, y_test, k=k, seed=seed),
        "pca": probe_scores(pca.transform(xa), y_train, pca.transform(xb), y_test, k=k, seed=seed),
    }
