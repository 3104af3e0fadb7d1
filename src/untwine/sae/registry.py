"""The architectures by name: ``--arch NAME`` looks them up here."""

from __future__ import annotations

from untwine.errors import UntwineError
from untwine.sae.base import SparseAutoencoder
from untwine.sae.batchtopk import BatchTopKSAE
from untwine.sae.jumprelu import JumpReLUSAE
from untwine.sae.mp import MatchingPursuitSAE
from untwine.sae.relu import ReLUSAE
from untwine.sae.top_afa import TopAFASAE
from untwine.sae.topk import TopKSAE

#: architecture name -> class
ARCHITECTURES: dict[str, type[SparseAutoencoder]] = {
    cls.name: cls for cls in (ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE, MatchingPursuitSAE, TopAFASAE)
}


def get_architecture(name: str) -> type[SparseAutoencoder]:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UntwineError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}") from None
