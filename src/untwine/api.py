"""The top-level Python API of untwine's learning half.

    import untwine
    run = untwine.train("beta_vae", "dsprites", steps=3000, out="runs/bvae", set={"beta": 4})
    model = untwine.load("runs/bvae")          # eval mode, CPU; model.encode(x), model.decode(z)
    scores = untwine.evaluate("runs/bvae", num_train=2000, num_test=1000)

``train`` here is the :mod:`untwine.train` package, which is callable (calling it
calls :func:`untwine.train.train`), so ``from untwine.api import train`` in
``untwine/__init__.py`` keeps ``import untwine.train`` working.  See
:func:`untwine.train.train`, :func:`untwine.train.load` and
:func:`untwine.train.evaluate_run` for every option.
"""

from __future__ import annotations

import sys

import untwine.train  # noqa: F401  (the package; callable)
from untwine.train import Run, open_run
from untwine.train import evaluate_run as evaluate
from untwine.train import load

train = sys.modules["untwine.train"]

__all__ = ["Run", "evaluate", "load", "open_run", "train"]
