"""``topk``: keep each row's ``k`` largest pre-activations (Gao et al. 2024, "Scaling and
evaluating sparse autoencoders"; Makhzani & Frey 2013).

``f = ReLU(TopK_k((x - b_dec) W_enc + b_enc))``, loss ``||x - x_hat||^2`` plus AuxK on dead
latents.  Decoding gathers the ``k`` selected decoder rows (``embedding_bag``) instead of a
dense ``[B, d_sae] @ [d_sae, d_in]`` product, and training writes the sparse gradient out
by hand (:mod:`untwine.sae.selecting`).  Members of one module may use different ``k``.
SAELens: ``topk``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from untwine.sae.selecting import SelectingSAE, Selection


def topk_mask(ks: list[int], device) -> Tensor | None:
    """``[M, 1, max k]`` bool: slot ``j`` is used by member ``m`` when ``j < k_m`` (None: all)."""
    kmax = max(ks)
    if all(k == kmax for k in ks):
        return None
    return torch.arange(kmax, device=device).view(1, 1, -1) < torch.tensor(ks, device=device).view(-1, 1, 1)


class TopKSAE(SelectingSAE):
    name: ClassVar[str] = "topk"
    saelens_architecture: ClassVar[str] = "topk"
    hparam_defaults: ClassVar[dict[str, Any]] = {"k": None}
    member_hparams = ("k",)
    required_hparams = ("k",)
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
