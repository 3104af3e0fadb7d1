"""Moved to :mod:`untwine.concepts.pca` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.pca``."""

from __future__ import annotations

from untwine.concepts.pca import PCA

__all__ = ["PCA"]
