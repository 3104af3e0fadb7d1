"""``top_afa``: top-k with ``k`` chosen per row by the approximate feature activation
(Lee et al. 2025, "Evaluating and Designing Sparse Autoencoders by Approximating
Quasi-Orthogonality").

With unit, nearly orthogonal decoder rows ``||z||^2 ~ ||f||^2`` where ``z = x - b_dec``.
Top-AFA ranks the ReLU'd pre-activations by ``(a_i ||d_i||)^2`` and keeps the first ``n``,
``n`` the count whose cumulative norm ``sqrt(sum of the n largest)`` is closest to ``||z||``
(ties: the smaller ``n``) - the smallest set whose norm matches the input's.  ``k`` caps
``n`` (default: ``d_in``).  Optional norm-matching loss: ``afa_coefficient * mean (||f|| -
||z||)^2`` (off by default).  AuxK on dead latents.  SAELens has no such architecture; the
saved ``cfg.json`` says ``top_afa`` and untwine loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from untwine.sae.base import Encoded
from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae.saelens_keys import pos_int
from untwine.sae.selecting import SelectingSAE, Selection


def afa_counts(vals_sorted: Tensor, target_norm: Tensor) -> Tensor:
    """``[..]`` number of leading entries of descending ``vals_sorted [.., K]`` whose
    cumulative norm is closest to ``target_norm [..]`` (at least 1)."""
    cum = vals_sorted.pow(2).cumsum(-1).sqrt()
    return (cum - target_norm.unsqueeze(-1)).abs().argmin(-1) + 1


class TopAFASAE(SelectingSAE):
    """top-k with k per row from the approximate feature activation (untwine's own: top_afa)"""

    name: ClassVar[str] = "top_afa"

    @dataclass(kw_only=True)
    class Params:
        k: int | None = hparam(None, doc="cap of the latents per row (None: min(d_in, latents))", member=True, low=1)
        afa_coefficient: float = hparam(0.0, doc="weight of the norm-matching loss", member=True, low=0)

    saelens_architecture: ClassVar[str] = "top_afa"
    saelens_reads = ("top_afa",)
    saelens_keys = {"top_afa": {"k": (None, pos_int)}}
    uses_auxk = True

    @classmethod
    def resolve_hparams(cls, given, *, d_in, d_sae):
        hp = super().resolve_hparams(given, d_in=d_in, d_sae=d_sae)
        if hp["k"] is None:
            hp["k"] = min(d_in, d_sae)
        return hp

    def select(self, xn: Tensor) -> Selection:
        ks = self.member_ints("k")
        kmax = max(ks)
        xc = self.centered(xn)
        pre = self.pre_acts(xn, xc)
        norms = self.W_dec.norm(dim=-1).unsqueeze(1)  # [M, 1, h]
        s_sorted, idx = (pre.relu() * norms).topk(kmax, dim=-1, sorted=True)
        cap = torch.arange(kmax, device=xn.device).view(1, 1, -1) < torch.tensor(ks, device=xn.device).view(-1, 1, 1)
        n = afa_counts(s_sorted * cap, xc.norm(dim=-1))
        keep = torch.arange(kmax, device=xn.device).view(1, 1, -1) < n.unsqueeze(-1)
        return Selection(xc, pre, idx, (keep & cap).to(pre.dtype))

    def _afa_on(self) -> bool:
        return any(h["afa_coefficient"] != 0 for h in self.hparams)

    def hand_gradients(self) -> bool:
        return not self._afa_on()

    def penalty(self, enc: Encoded, xn: Tensor, progress: float):
        if not self._afa_on():
            return None  # (decided on the host: no device sync per step)
        coef = self.member_tensor("afa_coefficient")
        f_norm = (enc.values * self.W_dec.norm(dim=-1).gather(-1, enc.indices.flatten(1)).view_as(enc.values)).norm(dim=-1)
        z_norm = self.centered(xn).norm(dim=-1)
        return coef * (f_norm - z_norm).pow(2).mean(-1)

    def saelens_config(self, m, scale):
        return {"k": int(self.hparams[m]["k"])}

    @classmethod
    def saelens_hparams(cls, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"k": int(cfg["k"])}


register(TopAFASAE)
