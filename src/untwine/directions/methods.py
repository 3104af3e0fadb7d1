"""The catalogue of direction methods: every built-in method module imported (each registers
itself in :data:`untwine.directions.base.METHODS`, in the order of the comparison table), and
the look-ups the commands use.  A plug-in method calls :func:`untwine.directions.register`.
"""

from __future__ import annotations

# imported in the order of the comparison table (each module registers its method)
from untwine.directions import sefa, ganspace, voynov, householder, gradctrl, potential_flow, baselines  # noqa: F401, I001
from untwine.directions.base import METHODS, Method


def get_method(name: str) -> Method:
    """The registered method ``name``; one error line listing the known ones otherwise."""
    return METHODS.lookup(name)


def learnt_methods() -> list[str]:
    """The names of the registered methods that train (``--train-steps`` applies to these)."""
    return [m.name for m in METHODS.values() if m.learnt]
