"""Training disentangling models: configs, the training loop, checkpoints, run directories, evaluation.

* :func:`train` trains a model into a run directory (``untwine train``);
* :func:`load` gives back the trained model (eval mode, CPU by default);
* :func:`open_run` reads a run directory (:class:`Run`: config, log, checkpoint);
* :func:`evaluate_run` computes the metric suite on a run (``untwine evaluate``).

This module is itself callable: ``untwine.train(...)`` is :func:`train`, so the
top-level ``untwine.train`` can be both this package and the function (re-exporting
the function under the package's name would hide the package from
``import untwine.train``).
"""

import sys as _sys
import types as _types

from untwine.train.api import resolve_config, train
from untwine.train.config import RunConfig, load_config, parse_overrides
from untwine.train.evaluate import evaluate_run
from untwine.train.log import read_log
from untwine.train.run import Run, is_run_dir, load, open_run, resolve_device

__all__ = [
    "Run",
    "RunConfig",
    "evaluate_run",
    "is_run_dir",
    "load",
    "load_config",
    "open_run",
    "parse_overrides",
    "read_log",
    "resolve_config",
    "resolve_device",
    "train",
]


class _CallableModule(_types.ModuleType):
    """``untwine.train(...)`` calls :func:`untwine.train.train`."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
