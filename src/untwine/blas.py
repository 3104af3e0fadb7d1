"""One BLAS thread for small, thin products, where extra BLAS/OpenMP threads only spin.

Used by the metrics' logistic regressions and by concept probing and scoring (measured in
their docstrings).  ``threadpoolctl`` comes with scikit-learn; without it this does nothing.
"""

from __future__ import annotations

from contextlib import nullcontext

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

__all__ = ["one_blas_thread"]


def one_blas_thread():
    """Context limiting BLAS/OpenMP to one thread."""
    return threadpool_limits(1) if threadpool_limits is not None else nullcontext()
