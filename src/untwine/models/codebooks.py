"""The scalar codebooks of a quantised model (QLAE, QL-InfoWGAN): the values each latent can take.

Traversals sweep a quantised latent over its codebook values instead of a range
(:mod:`untwine.viz.traversal`), and direction methods read them (:mod:`untwine.directions.base`).
"""

from __future__ import annotations

import numpy as np
import torch

_CODEBOOK_ATTRS = ("codebook", "codebooks")


def codebook_values(model) -> np.ndarray | None:
    """The per-latent scalar codebook ``[D, V]`` (sorted per latent) of a quantised model, or None.

    Looks for a 2-D tensor attribute ``codebook`` (as :class:`untwine.models.qlae.QLAE` has) or
    ``codebooks``, of shape ``[D, V]``, on the model or on its ``quantizer`` sub-module.
    """
    owners = [model]
    for sub in ("quantizer", "quantiser", "quant"):
        if hasattr(model, sub):
            owners.append(getattr(model, sub))
    for owner in owners:
        for attr in _CODEBOOK_ATTRS:
            cb = getattr(owner, attr, None)
            if isinstance(cb, torch.Tensor) and cb.ndim == 2:
                return np.sort(cb.detach().float().cpu().numpy().astype(np.float64), axis=1)
    return None
