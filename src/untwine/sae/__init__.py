"""Sparse autoencoders with ground truth: train, encode, evaluate, synthetic activations.

* architectures (one module each, :data:`ARCHITECTURES`): ``relu``, ``topk``,
  ``batchtopk``, ``jumprelu``, ``mp`` (matching pursuit), ``top_afa``;
* :func:`train_sae` / :func:`train_saes`: one shared training loop; many SAEs train
  together in one pass over the activations (:mod:`untwine.sae.train`);
* :func:`load_sae` / :func:`save_sae`: SAELens's on-disk layout (:mod:`untwine.sae.io`);
* :func:`evaluate_sae`: reconstruction, ground-truth, quasi-orthogonality metrics and the
  disentanglement suite on the codes (:mod:`untwine.sae.metrics`);
* :func:`make_synthetic`: activations with a known dictionary (:mod:`untwine.sae.synthetic`).
"""

from __future__ import annotations

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.data import iter_batches, open_activations
from untwine.sae.encode import encode_file
from untwine.sae.io import load_sae, save_sae
from untwine.sae.registry import ARCHITECTURES, get_architecture
from untwine.sae.train import SAESpec, train_sae, train_saes

__all__ = [
    "ARCHITECTURES",
    "Encoded",
    "SAESpec",
    "SparseAutoencoder",
    "encode_file",
    "evaluate_sae",
    "get_architecture",
    "iter_batches",
    "load_sae",
    "make_synthetic",
    "open_activations",
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
