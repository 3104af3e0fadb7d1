"""untwine: disentangled representation learning in PyTorch.

Measure any representation (:mod:`untwine.metrics`), generate or load data with
known factors (:mod:`untwine.data`), train disentangling models
(:mod:`untwine.models`, :mod:`untwine.train`), look inside them
(:mod:`untwine.viz`) and run studies (:mod:`untwine.study`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from untwine.errors import UntwineError

__all__ = ["UntwineError", "__version__", "evaluate", "load", "train"]


def __getattr__(name: str):
    # the learning API imports torch (seconds): only when it is first used, so that
    # ``untwine score`` and ``untwine.metrics`` start fast
    if name in ("evaluate", "load", "train"):
        from untwine import api

        return getattr(api, name)
    raise AttributeError(f"module 'untwine' has no attribute {name!r}")
