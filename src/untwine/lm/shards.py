"""Moved: layer folders are :mod:`untwine.activations.shards`, the reader of every ``ACTS``
argument is :func:`untwine.activations.reader.read_activations`.  This module re-exports
their names for code written against ``untwine.lm.shards``."""

from __future__ import annotations

from untwine.activations.reader import read_activations
from untwine.activations.shards import (
    FORMAT,
    MANIFEST,
    ShardWriter,
    read_layer,
    read_manifest,
    shard_name,
    shard_problem,
)

__all__ = ["FORMAT", "MANIFEST", "ShardWriter", "read_activations", "read_layer", "read_manifest", "shard_name",
           "shard_problem"]
