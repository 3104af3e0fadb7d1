"""Moved to :mod:`untwine.concepts.probing` (concept scoring is one package); this module
re-exports its names for code written against ``untwine.lm.probing``."""

from __future__ import annotations

from untwine.concepts.probing import SPARSE_KS, LinearProbes, correlation_ratio, sparse_probing

__all__ = ["SPARSE_KS", "LinearProbes", "correlation_ratio", "sparse_probing"]
