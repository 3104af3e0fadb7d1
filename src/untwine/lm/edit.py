"""Moved to :mod:`untwine.concepts.edit` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.edit``."""

from __future__ import annotations

from untwine.concepts.edit import edit_test

__all__ = ["edit_test"]
