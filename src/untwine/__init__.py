"""untwine: disentangled representation learning in PyTorch.

Measure any representation (:mod:`untwine.metrics`), generate or load data with
known factors (:mod:`untwine.data`), train disentangling models
(:mod:`untwine.models`, :mod:`untwine.train`), look inside them
(:mod:`untwine.viz`) and run studies (:mod:`untwine.study`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from untwine.errors import UntwineError
from untwine.api import evaluate, load, train

__all__ = ["UntwineError", "__version__", "evaluate", "load", "train"]
