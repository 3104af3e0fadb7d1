"""The fraction of variance unexplained (FVU), the one definition every reconstruction score uses.

``fvu = sum_i ||x_i - x_hat_i||^2 / sum_i ||x_i - mean(x)||^2``: squared error over the total
variance *around the mean of the rows scored*.  (Dividing by ``sum ||x||^2`` instead, or
averaging per-dimension ratios, gives a different and smaller number when the data have a
non-zero mean, a known pitfall.)  ``explained_variance = 1 - fvu``.  It is undefined when the
rows have no variance (one row, or every row the same).  :func:`untwine.sae.metrics.evaluate_sae`
streams the same ratio over chunks with float64 sums.
"""

from __future__ import annotations

from untwine._checks import as_codes
from untwine.errors import UntwineError


def fvu(x, x_hat, *, undefined: str = "raise") -> float:
    """Fraction of variance unexplained of ``x_hat`` for rows ``x`` (module docstring).

    Rows without variance: ``undefined="raise"`` raises :class:`UntwineError`,
    ``undefined="nan"`` returns NaN (reported as undefined by the caller).
    """
    if undefined not in ("raise", "nan"):
        raise UntwineError(f"fvu: undefined must be 'raise' or 'nan', got {undefined!r}")
    a = as_codes(x, "activations")
    b = as_codes(x_hat, "reconstruction")
    if a.shape != b.shape:
        raise UntwineError(f"reconstruction has shape {b.shape} but the activations have {a.shape}")
    total = ((a - a.mean(axis=0)) ** 2).sum()
    if total <= 0:
        if undefined == "nan":
            return float("nan")
        raise UntwineError("activations: every row is the same, the variance to explain is 0")
    return float(((a - b) ** 2).sum() / total)


__all__ = ["fvu"]
