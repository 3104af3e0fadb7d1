"""``relu``: the standard SAE (Bricken et al. 2023; Anthropic's April 2024 update).

``f = ReLU((x - b_dec) W_enc + b_enc)``, loss ``||x - x_hat||^2 + l1 * sum_i f_i ||d_i||``:
the L1 penalty is weighted by each latent's decoder-row norm, so the decoder is left
unconstrained (rows start at norm 0.1) without the penalty being cheated by shrinking
codes and growing rows.  Default ``l1_coefficient`` 3 (inputs normalised to norm
``sqrt(d_in)``; the best of 0.3, 1, 3, 10 on untwine's synthetic benchmark).  The penalty's weight rises linearly from 0 over the first
``l1_warmup`` fraction of training (5%), as in that update.  SAELens: ``standard``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from untwine.sae.saelens_keys import one_of
from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.hparams import hparam
from untwine.sae.registry import register


class ReLUSAE(SparseAutoencoder):
    """ReLU codes, L1 penalty weighted by decoder-row norms (SAELens: standard)"""

    name: ClassVar[str] = "relu"

    @dataclass(kw_only=True)
    class Params:
        l1_coefficient: float = hparam(3.0, doc="weight of the L1 penalty", member=True, low=0)
        l1_warmup: float = hparam(0.05, doc="fraction of training over which the penalty rises from 0", low=0)

    saelens_architecture: ClassVar[str] = "standard"
    saelens_reads = ("standard",)
    saelens_keys = {"standard": {"activation_fn": ("relu", one_of("relu"))}}  # pre-6.0 files name their activation
    saelens_training_keys = {"standard": ("decoder_init_norm", "l1_coefficient", "lp_norm", "l1_warm_up_steps")}
    unit_norm_decoder = False
    decoder_init_norm = 0.1

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        pre = self.pre_acts(xn)
        return Encoded(pre.relu(), None, pre)

    def penalty(self, enc: Encoded, xn: Tensor, progress: float) -> Tensor:
        warm = self.hparams[0]["l1_warmup"]
        ramp = min(1.0, progress / warm) if warm > 0 else 1.0
        norms = self.W_dec.norm(dim=-1)  # [M, d_sae]
        l1 = (enc.values * norms.unsqueeze(1)).sum(-1).mean(-1)
        return ramp * self.member_tensor("l1_coefficient") * l1


register(ReLUSAE)
