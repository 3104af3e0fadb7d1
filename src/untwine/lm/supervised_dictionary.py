"""Moved to :mod:`untwine.concepts.supervised_dictionary` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.supervised_dictionary``."""

from __future__ import annotations

from untwine.concepts.reconstruction import fvu
from untwine.concepts.supervised_dictionary import SupervisedDictionary

__all__ = ["SupervisedDictionary", "fvu"]
