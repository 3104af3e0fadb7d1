"""untwine: disentangled representation learning in PyTorch.

Measure any representation (:mod:`untwine.metrics`), generate or load data with
known factors (:mod:`untwine.data`), train disentangling models
(:mod:`untwine.models`, :mod:`untwine.train`), look inside them
(:mod:`untwine.viz`) and run studies (:mod:`untwine.study`).
"""

from __future__ import annotations

__version__ = "0.1.0"

from untwine.errors import UntwineError

__all__ = ["EvaluationConfig", "UntwineError", "__version__", "evaluate", "load", "report", "score_files", "train", "traverse"]

#: public name -> (module, attribute); imported when first used: the learning API imports torch
#: (seconds), and ``untwine score`` and ``untwine.metrics`` start without it
_LAZY = {
    "evaluate": ("untwine.api", "evaluate"),
    "load": ("untwine.api", "load"),
    "train": ("untwine.api", "train"),
    "EvaluationConfig": ("untwine.train.config", "EvaluationConfig"),
    "score_files": ("untwine.metrics.score_files", "score_files"),
    "traverse": ("untwine.viz.traversal", "traverse_run"),
    "report": ("untwine.viz.report", "build_report"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'untwine' has no attribute {name!r}")
