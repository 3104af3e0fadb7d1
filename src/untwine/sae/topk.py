"""``topk``: keep each row's ``k`` largest pre-activations (Gao et al. 2024, "Scaling and
evaluating sparse autoencoders"; Makhzani & Frey 2013).

``f = ReLU(TopK_k((x - b_dec) W_enc + b_enc))``, loss ``||x - x_hat||^2`` plus AuxK on dead
latents.  Decoding gathers the ``k`` selected decoder rows (``embedding_bag``) instead of a
dense ``[B, d_sae] @ [d_sae, d_in]`` product, and training writes the sparse gradient out
by hand (:mod:`untwine.sae.selecting`).  Members of one module may use different ``k``.
SAELens: ``topk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae.saelens_keys import boolean, cfg_value, pos_int
from untwine.sae.selecting import SelectingSAE, Selection


def topk_mask(ks: list[int], device) -> Tensor | None:
    """``[M, 1, max k]`` bool: slot ``j`` is used by member ``m`` when ``j < k_m`` (None: all)."""
    kmax = max(ks)
    if all(k == kmax for k in ks):
        return None
    return torch.arange(kmax, device=device).view(1, 1, -1) < torch.tensor(ks, device=device).view(-1, 1, 1)


#: training-only keys of SAELens's TopK-style checkpoints
TOPK_TRAINING_KEYS = ("decoder_init_norm", "use_sparse_activations", "aux_loss_coefficient")


def fold_saelens_decoder_norms(tensors: dict[str, Tensor]) -> None:
    """SAELens's ``rescale_acts_by_decoder_norm``: codes ``pre_i * ||d_i||`` decoded by
    ``d_i / ||d_i||``; folded into ``W_enc``, ``b_enc``, ``W_dec`` as SAELens's own
    inference export does (thresholds compare with the folded pre-activations, unchanged)."""
    n = tensors["W_dec"].float().norm(dim=-1).clamp_min(1e-8)
    tensors["b_enc"] = tensors["b_enc"].float() * n
    tensors["W_dec"] = tensors["W_dec"].float() / n[:, None]
    tensors["W_enc"] = tensors["W_enc"].float() * n[None, :]


class TopKSAE(SelectingSAE):
    """the k largest pre-activations of each row, AuxK (SAELens: topk)"""

    name: ClassVar[str] = "topk"

    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="active latents per row", member=True, low=1)

    saelens_architecture: ClassVar[str] = "topk"
    saelens_reads = ("topk",)
    saelens_keys = {"topk": {"k": (100, pos_int), "rescale_acts_by_decoder_norm": (False, boolean)}}
    saelens_training_keys = {"topk": TOPK_TRAINING_KEYS}
    uses_auxk = True
    # the top-k choice is not invariant to rescaling latents: export keeps the rows as they are
    # (unit norm when untwine trained them; a SAELens TopK's own norms otherwise)
    fold_decoder_norms = False

    def select(self, xn: Tensor) -> Selection:
        ks = self.member_ints("k")
        mask = topk_mask(ks, xn.device)
        xc = self.centered(xn)
        pre = self.pre_acts(xn, xc)
        # sorted only when members differ in k (slot j is used by members with k > j)
        _, idx = pre.topk(max(ks), dim=-1, sorted=mask is not None)
        return Selection(xc, pre, idx, mask)

    def saelens_config(self, m, scale):
        return {"k": int(self.hparams[m]["k"]), "rescale_acts_by_decoder_norm": False}

    @classmethod
    def saelens_hparams(cls, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"k": int(cfg["k"])}

    @classmethod
    def saelens_tensors(cls, sl_arch, cfg, tensors):
        if cfg_value(cfg, cls, sl_arch, "rescale_acts_by_decoder_norm"):
            fold_saelens_decoder_norms(tensors)


register(TopKSAE)
