"""Ground-truth datasets: built-in procedural renderers and real-file loaders."""

from untwine.data.base import GroundTruthDataset

__all__ = ["GroundTruthDataset"]
