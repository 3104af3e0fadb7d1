"""Sparse autoencoders with ground truth: train, encode, evaluate, synthetic activations.

* architectures (one module each, :data:`ARCHITECTURES`): ``relu``, ``topk``,
  ``batchtopk``, ``jumprelu``, ``mp`` (matching pursuit), ``top_afa``, ``codebook``; a new one is one
  :class:`SparseAutoencoder` (or :class:`SelectingSAE`) subclass with a ``Params`` dataclass
  of :func:`hparam` fields and one :func:`register` call (:mod:`untwine.sae.registry`);
* :func:`train_sae` / :func:`train_saes`: one shared training loop; many SAEs train
  together in one pass over the activations (:mod:`untwine.sae.train`);
* :func:`load_sae` / :func:`save_sae`: SAELens's on-disk layout (:mod:`untwine.sae.io`);
* :func:`evaluate_sae`: reconstruction, ground-truth, quasi-orthogonality metrics and the
  disentanglement suite on the codes (:mod:`untwine.sae.metrics`);
* :func:`make_synthetic`: activations with a known dictionary (:mod:`untwine.sae.synthetic`).
"""

from __future__ import annotations

import importlib

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.data import iter_batches, open_activations
from untwine.sae.encode import encode_file
from untwine.sae.hparams import hparam
from untwine.sae.io import load_sae, save_sae
from untwine.sae.registry import ARCHITECTURES, get_architecture, register
from untwine.sae.selecting import SelectingSAE, Selection
from untwine.sae.specs import SAESpec
from untwine.sae.train import train_sae, train_saes

#: untwine's own architectures: each module registers its class (in this order) when imported
BUILTIN = ("relu", "topk", "batchtopk", "jumprelu", "mp", "top_afa", "codebook")
for _module in BUILTIN:
    importlib.import_module(f"untwine.sae.{_module}")

__all__ = [
    "ARCHITECTURES",
    "Encoded",
    "SAESpec",
    "SelectingSAE",
    "Selection",
    "SparseAutoencoder",
    "encode_file",
    "evaluate_sae",
    "get_architecture",
    "hparam",
    "iter_batches",
    "load_sae",
    "make_synthetic",
    "open_activations",
    "register",
    "save_sae",
    "train_sae",
    "train_saes",
]


def __getattr__(name):
    if name == "evaluate_sae":
        from untwine.sae.metrics import evaluate_sae

        return evaluate_sae
    if name == "make_synthetic":
        from untwine.sae.synthetic import make_synthetic

        return make_synthetic
    raise AttributeError(name)
