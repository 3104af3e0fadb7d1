"""The one registry helper behind every name -> thing table: models, image architectures,
datasets, SAE architectures, direction methods and metrics.

A :class:`Registry` is a ``dict`` (iteration order = listing order, so CLI help texts and
error messages are derived from it, never typed out) with the same two errors everywhere:
an unknown name lists the known ones, a name registered twice is refused unless replaced.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from untwine.errors import UntwineError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """``name -> entry`` of one ``kind`` (e.g. ``"model"``); ``plural`` names them in messages."""

    def __init__(self, kind: str, plural: str | None = None, *, extra: str = "") -> None:
        super().__init__()
        self.kind, self.plural, self.extra = kind, plural or f"{kind}s", extra

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Register ``entry`` under ``name``; a name taken by another entry is refused unless ``replace``."""
        if not replace and name in self and self[name] is not entry:
            raise UntwineError(f"{self.kind} {name!r} is registered already")
        self[name] = entry
        return entry

    def lookup(self, name) -> T:
        """The entry of ``name``; an unknown name is one error line listing the known ones."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise UntwineError(f"unknown {self.kind} {name!r}; known {self.plural}: {self.names()}{self.extra}") from None

    def names(self) -> str:
        """``"a, b, c"``: the registered names in order, for help texts."""
        return ", ".join(self)
