"""The targets of labelled series: class labels or real-valued (regression) targets, their
discretisation into classes (the ``--factor-bins`` rule) and the stratified train / test split
of a file that comes without a test split.  Used by :mod:`untwine.data.series`.
"""

from __future__ import annotations

import numpy as np

from untwine.errors import UntwineError


def real_targets(labels, regression: bool | None = None) -> np.ndarray | None:
    """The labels as float64 when they are regression targets, else None.

    ``regression`` None decides from the values: numbers of which at least one is not an
    integer (class labels are names or integers); True requires numbers (one error line
    otherwise); False keeps them as class labels."""
    if regression is False:
        return None
    arr = np.asarray(labels).reshape(-1)
    try:
        values = arr.astype(np.float64) if arr.dtype.kind in "biuf" else np.array([float(v) for v in arr.tolist()])
    except (TypeError, ValueError):
        if regression:
            raise UntwineError("regression targets must be numbers") from None
        return None
    if regression is None and (arr.dtype.kind in "biu" or np.all(values == np.round(values))):
        return None
    if not np.isfinite(values).all():
        raise UntwineError("regression targets must be finite numbers")
    return values


def target_classes(values: np.ndarray, bins: int) -> tuple[np.ndarray, list[str]]:
    """Real-valued targets as classes ``0..m-1`` and their names: ``bins`` equal-width bins between
    the minimum and the maximum (the ``--factor-bins`` rule,
    :func:`untwine._checks.discretize_factors`), empty bins left out.  A bin is named by its range
    ``[low, high)`` (the last one closed); integer targets with at most ``bins`` values by the value."""
    from untwine._checks import discretize_factors

    values = np.asarray(values, dtype=np.float64)
    bins = int(bins)
    raw = discretize_factors(values[:, None], bins)[:, 0]
    used, classes = np.unique(raw, return_inverse=True)
    uniq = np.unique(values)
    if np.all(uniq == np.round(uniq)) and uniq.shape[0] <= bins:  # discretize_factors keeps these values
        names = [f"{uniq[c]:g}" for c in used]
    else:
        edges = np.histogram_bin_edges(values, bins=bins)
        names = [f"[{edges[c]:.4g}, {edges[c + 1]:.4g}{']' if c == bins - 1 else ')'}" for c in used]
    return classes.astype(np.int64), names


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``: ``round(test_fraction * n_c)`` rows of each class ``c`` go to test
    (at least one row stays in train), drawn with ``numpy.random.default_rng(seed)``."""
    if not 0.0 < float(test_fraction) < 1.0:
        raise UntwineError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(int(seed))
    train, test = [], []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[rng.permutation(idx.shape[0])]
        k = min(int(round(test_fraction * idx.shape[0])), idx.shape[0] - 1)
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _strata(labels: np.ndarray, regression: bool | None, bins: int) -> np.ndarray:
    """What a lone file's stratified split keeps in proportion: the classes, or the target's bins."""
    values = real_targets(labels, regression)
    return labels if values is None else target_classes(values, max(int(bins), 2))[0]
