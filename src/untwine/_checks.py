"""Validation and conversion of the array conventions shared by all of untwine.

Conventions
-----------
* codes: ``[N, D]`` float array, one row per sample, one column per latent.
* factors: ``[N, K]`` integer class indices, one column per ground-truth factor.

Continuous factors are discretised with :func:`discretize_factors`: ``bins``
equal-width bins between the column's minimum and maximum (the rule used by
disentanglement_lib's ``utils.make_discretizer``), giving classes ``0..bins-1``.
"""

from __future__ import annotations

import numpy as np

from untwine.errors import UntwineError


def _as_2d(x, name: str) -> np.ndarray:
    try:
        if hasattr(x, "detach"):  # torch tensor
            x = x.detach().cpu().numpy()
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise UntwineError(f"{name}: cannot be converted to an array ({exc})") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise UntwineError(f"{name}: expected a 2-D array [N, columns], got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UntwineError(f"{name}: array is empty (shape {tuple(arr.shape)})")
    if arr.dtype.kind not in "biuf":
        raise UntwineError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def as_codes(codes, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as a float64 ``[N, D]`` array, rejecting NaN/inf."""
    arr = _as_2d(codes, name).astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UntwineError(
            f"{name}: {int(bad.sum())} non-finite value(s) (NaN or inf), first at row {row}, column {col}"
        )
    return arr


def as_factors(factors, name: str = "factors", *, allow_constant: bool = False) -> np.ndarray:
    """Return ``factors`` as an int64 ``[N, K]`` array of class indices.

    Rejects NaN/inf, non-integer values (suggesting discretisation) and, unless
    ``allow_constant``, factors that take a single value.
    """
    arr = _as_2d(factors, name)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise UntwineError(
                f"{name}: {int(bad.sum())} non-finite value(s) (NaN or inf), first at row {row}, column {col}"
            )
        if not np.all(arr == np.round(arr)):
            col = int(np.where(np.any(arr != np.round(arr), axis=0))[0][0])
            raise UntwineError(
                f"{name}: factor {col} has non-integer values; factors must be class indices "
                "(discretise continuous factors, e.g. with --factor-bins N)"
            )
    arr = arr.astype(np.int64)
    if not allow_constant:
        for k in range(arr.shape[1]):
            if np.all(arr[:, k] == arr[0, k]):
                raise UntwineError(f"{name}: factor {k} takes a single value ({arr[0, k]}); it carries no information")
    return arr


def same_rows(a: np.ndarray, b: np.ndarray, name_a: str = "codes", name_b: str = "factors") -> None:
    """Raise unless ``a`` and ``b`` have the same number of rows."""
    if a.shape[0] != b.shape[0]:
        raise UntwineError(f"{name_a} has {a.shape[0]} rows but {name_b} has {b.shape[0]}; they must match")


def check_pair(codes, factors, *, codes_name: str = "codes", factors_name: str = "factors"):
    """Validate a (codes, factors) pair and return ``(float64 codes, int64 factors)``."""
    c = as_codes(codes, codes_name)
    f = as_factors(factors, factors_name)
    same_rows(c, f, codes_name, factors_name)
    return c, f


def discretize_factors(values, bins: int) -> np.ndarray:
    """Discretise continuous factor columns into ``bins`` equal-width classes.

    Each column is split into ``bins`` equal-width intervals between its minimum
    and maximum (as ``np.histogram`` does); the result holds class indices
    ``0..bins-1``.  Columns that are already integer-valued with at most ``bins``
    distinct values are mapped to ``0..n_values-1`` in sorted order instead, so
    discrete factors keep their classes.
    """
    arr = as_codes(values, "factors")
    if bins < 2:
        raise UntwineError(f"--factor-bins must be at least 2, got {bins}")
    out = np.empty(arr.shape, dtype=np.int64)
    for k in range(arr.shape[1]):
        col = arr[:, k]
        uniq = np.unique(col)
        if np.all(uniq == np.round(uniq)) and len(uniq) <= bins:
            out[:, k] = np.searchsorted(uniq, col)
        else:
            edges = np.histogram_bin_edges(col, bins=bins)
            out[:, k] = np.clip(np.digitize(col, edges[1:-1]), 0, bins - 1)
    return out


def check_train_test(codes_train, factors_train, codes_test, factors_test):
    """Validate a train and a test (codes, factors) pair with matching column counts.

    The train factors must each take several values; a test split may show a
    single value of a factor (small samples), so constant test factors are allowed.
    Returns float64 codes and int64 factors: ``(codes_train, factors_train, codes_test, factors_test)``.
    """
    ctr, ftr = check_pair(codes_train, factors_train, codes_name="codes_train", factors_name="factors_train")
    cte = as_codes(codes_test, "codes_test")
    fte = as_factors(factors_test, "factors_test", allow_constant=True)
    same_rows(cte, fte, "codes_test", "factors_test")
    if cte.shape[1] != ctr.shape[1]:
        raise UntwineError(f"codes_test has {cte.shape[1]} columns but codes_train has {ctr.shape[1]}; they must match")
    if fte.shape[1] != ftr.shape[1]:
        raise UntwineError(f"factors_test has {fte.shape[1]} columns but factors_train has {ftr.shape[1]}; they must match")
    return ctr, ftr, cte, fte


def check_seed(seed, name: str = "--seed") -> int:
    """``seed`` as an int; one :class:`UntwineError` line naming ``name`` unless it is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UntwineError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def nonnegative_factors(fac: np.ndarray) -> np.ndarray:
    """``fac`` (from :func:`as_factors`) unchanged, refusing negative values (factors are class indices)."""
    if (fac < 0).any():
        col = int(np.argwhere((fac < 0).any(0))[0][0])
        raise UntwineError(f"factors: factor {col} has negative values; factors must be class indices 0, 1, 2, ...")
    return fac
