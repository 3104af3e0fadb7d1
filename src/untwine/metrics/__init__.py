"""Disentanglement metrics over arrays and over ground-truth datasets.

Every metric is a function returning a ``dict`` of named floats; its module
docstring names its reference (paper and disentanglement_lib function) and its
defaults, which follow disentanglement_lib's so that numbers are comparable with
the literature.

Array metrics (codes ``[N, D]`` float, factors ``[N, K]`` integer classes):
:func:`mig`, :func:`sap`, :func:`dci`, :func:`modularity`, :func:`explicitness`,
:func:`irs`, :func:`unsupervised`, :func:`infomec`; :func:`evaluate_arrays` runs
them all with disentanglement_lib's train/test usage.

Interventional metrics (a ground-truth dataset and an encoder):
:func:`beta_vae_score`, :func:`factor_vae_score`.

Diagnostics: :func:`latent_activity` (active/passive latents).
"""

import importlib

from untwine.metrics.activity import latent_activity
from untwine.metrics.dci import dci, importance_matrix
from untwine.metrics.explicitness import explicitness
from untwine.metrics.infomec import infomec, nmi_matrix
from untwine.metrics.irs import irs
from untwine.metrics.mig import mig
from untwine.metrics.modularity import modularity
from untwine.metrics.sap import sap
from untwine.metrics.suite import ARRAY_METRICS, SCORE_KEYS, evaluate_arrays
from untwine.metrics.unsupervised import unsupervised

__all__ = [
    "ARRAY_METRICS",
    "SCORE_KEYS",
    "beta_vae_score",
    "dci",
    "evaluate_arrays",
    "explicitness",
    "factor_vae_score",
    "importance_matrix",
    "infomec",
    "irs",
    "latent_activity",
    "mig",
    "modularity",
    "nmi_matrix",
    "sap",
    "unsupervised",
]

#: metrics that encode images with torch, imported when first used (torch takes seconds to import)
_INTERVENTIONAL = {"beta_vae_score": "untwine.metrics.beta_vae", "factor_vae_score": "untwine.metrics.factor_vae"}


def __getattr__(name: str):
    if name in _INTERVENTIONAL:
        return getattr(importlib.import_module(_INTERVENTIONAL[name]), name)
    raise AttributeError(f"module 'untwine.metrics' has no attribute {name!r}")
