"""Moved to :mod:`untwine.concepts.baselines` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.baselines``."""

from __future__ import annotations

from untwine.concepts.baselines import concept_baselines, score_codes, split_rows

__all__ = ["concept_baselines", "score_codes", "split_rows"]
