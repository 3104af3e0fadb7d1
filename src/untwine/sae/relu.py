"""``relu``: the standard SAE (Bricken et al. 2023; Anthropic's April 2024 update).

``f = ReLU((x - b_dec) W_enc + b_enc)``, loss ``||x - x_hat||^2 + l1 * sum_i f_i ||d_i||``:
the L1 penalty is weighted by each latent's decoder-row norm, so the decoder is left
unconstrained (rows start at norm 0.1) without the penalty being cheated by shrinking
codes and growing rows.  Default ``l1_coefficient`` 3 (inputs normalised to norm
``sqrt(d_in)``; the best of 0.3, 1, 3, 10 on untwine's synthetic benchmark).  The penalty's weight rises linearly from 0 over the first
``l1_warmup`` fraction of training (5%), as in that update.  SAELens: ``standard``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from untwine.errors import UntwineError
from untwine.sae.base import Encoded, SparseAutoencoder


class ReLUSAE(SparseAutoencoder):
    name: ClassVar[str] = "relu"
    saelens_architecture: ClassVar[str] = "standard"
    hparam_defaults: ClassVar[dict[str, Any]] = {"l1_coefficient": 3.0, "l1_warmup": 0.05}
    member_hparams = ("l1_coefficient",)
    unit_norm_decoder = False
    decoder_init_norm = 0.1

    @classmethod
    def check_hparams(cls, hp, *, d_in, d_sae):
        super().check_hparams(hp, d_in=d_in, d_sae=d_sae)
        if hp["l1_coefficient"] < 0:
            raise UntwineError(f"l1_coefficient must be >= 0, got {hp['l1_coefficient']}")

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        pre = self.pre_acts(xn)
        return Encoded(pre.relu(), None, pre)

    def penalty(self, enc: Encoded, xn: Tensor, progress: float) -> Tensor:
        warm = self.hparams[0]["l1_warmup"]
        ramp = min(1.0, progress / warm) if warm > 0 else 1.0
        norms = self.W_dec.norm(dim=-1)  # [M, d_sae]
        l1 = (enc.values * norms.unsqueeze(1)).sum(-1).mean(-1)
        return ramp * self.member_tensor("l1_coefficient") * l1
