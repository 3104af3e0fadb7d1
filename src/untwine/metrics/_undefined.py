"""Scores that are undefined on the data given: NaN with one ``warning:`` line saying why.

A score whose formula degenerates (a ratio 0/0, an entropy in base 1) is reported as NaN
rather than as a conventional number that would read like a measurement; JSON files write
it as ``null`` and list its key under ``_undefined`` (:func:`untwine.files.write_scores`).

:func:`undefined` warns with an :class:`UndefinedScoreWarning` that carries the keys and
the reason; the suite runs its metrics under :func:`merged_undefined_warnings`, which
combines the warnings that give the same reason into one line naming every key (it uses
Python's process-wide warnings state, as :class:`warnings.catch_warnings` does).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

from untwine.errors import UntwineWarning

__all__ = ["UndefinedScoreWarning", "undefined", "merged_undefined_warnings", "SINGLE_FACTOR", "SINGLE_LATENT"]

#: why a score of how each code concentrates on one of several factors is undefined for one factor
SINGLE_FACTOR = (
    "with a single factor (a score of whether each code's information concentrates on one of several "
    "factors: one factor satisfies that trivially, so the conventional 1.0 would carry no information)"
)
#: why a score of how each factor concentrates on one of several codes is undefined for one code
SINGLE_LATENT = (
    "with a single (active) code (a score of whether each factor's information concentrates on one of "
    "several codes: one code satisfies that trivially, so the conventional 1.0 would carry no information)"
)


class UndefinedScoreWarning(UntwineWarning):
    """Scores ``keys`` are undefined on these data (``why``), reported as NaN."""

    def __init__(self, keys: Sequence[str], why: str):
        self.keys = tuple(keys)
        self.why = why
        names = ", ".join(self.keys[:-1]) + (" and " if len(self.keys) > 1 else "") + self.keys[-1]
        verb = "are" if len(self.keys) > 1 else "is"
        super().__init__(f"{names} {verb} undefined {why}; reported as NaN (null in JSON)")


def undefined(key: str, why: str, *, stacklevel: int = 3) -> float:
    """Warn that score ``key`` is undefined (``why``) and return NaN."""
    warnings.warn(UndefinedScoreWarning([key], why), stacklevel=stacklevel)
    return float("nan")


@contextlib.contextmanager
def merged_undefined_warnings(order: Sequence[str] = ()) -> Iterator[None]:
    """Collect the warnings raised inside the block (also by its worker threads) and show them
    when it ends, the :class:`UndefinedScoreWarning` s that give the same reason as one line
    naming all their keys (in the order of ``order``, then as raised); other warnings unchanged."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        _show(caught, {k: i for i, k in enumerate(order)})


def _show(caught: list, rank: dict[str, int]) -> None:
    merged: dict[str, list[str]] = {}
    for w in caught:
        if isinstance(w.message, UndefinedScoreWarning):
            keys = merged.setdefault(w.message.why, [])
            keys.extend(k for k in w.message.keys if k not in keys)
    shown: set = set()
    for w in caught:
        if isinstance(w.message, UndefinedScoreWarning):
            if w.message.why not in shown:
                shown.add(w.message.why)
                keys = sorted(merged[w.message.why], key=lambda k: rank.get(k, len(rank)))
                warnings.warn(UndefinedScoreWarning(keys, w.message.why), stacklevel=4)
        elif (w.category, str(w.message), w.filename, w.lineno) not in shown:
            shown.add((w.category, str(w.message), w.filename, w.lineno))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
