"""Training disentangling models: configs, the training loop, checkpoints, run directories, evaluation.

* :func:`train` trains a model into a run directory (``untwine train``);
* :func:`load` gives back the trained model (eval mode, CPU by default);
* :func:`open_run` reads a run directory (:class:`Run`: config, log, checkpoint);
* :func:`evaluate_run` computes the metric suite on a run (``untwine evaluate``) under an
  :class:`EvaluationConfig`.

This module is itself callable: ``untwine.train(...)`` is :func:`train`, so the
top-level ``untwine.train`` can be both this package and the function (re-exporting
the function under the package's name would hide the package from
``import untwine.train``).
"""

import importlib as _importlib
import sys as _sys
import types as _types

#: public name -> submodule; imported when first used (most of them import torch, and
#: ``untwine.train.config`` is read by command-line parsers that must start fast)
_WHERE = {
    "resolve_config": "api",
    "train": "api",
    "EvaluationConfig": "config",
    "RunConfig": "config",
    "load_config": "config",
    "parse_overrides": "config",
    "evaluate_run": "evaluate",
    "read_log": "log",
    "Run": "run",
    "is_run_dir": "run",
    "load": "run",
    "open_run": "run",
    "resolve_device": "run",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(_importlib.import_module(f"untwine.train.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'untwine.train' has no attribute {name!r}")


class _CallableModule(_types.ModuleType):
    """``untwine.train(...)`` calls :func:`untwine.train.train`."""

    def __call__(self, *args, **kwargs):
        from untwine.train.api import train

        return train(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
