"""Moved to :mod:`untwine.concepts.top_sentences` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.top_sentences``."""

from __future__ import annotations

from untwine.concepts.top_sentences import top_sentences

__all__ = ["top_sentences"]
