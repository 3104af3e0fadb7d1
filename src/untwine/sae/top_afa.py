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

from typing import Any, ClassVar

import torch
from torch import Tensor

from untwine.errors import UntwineError
from untwine.sae.base import Encoded
from untwine.sae.selecting import SelectingSAE, Selection


def afa_counts(vals_sorted: Tensor, target_norm: Tensor) -> Tensor:
    """``[..]`` number of leading entries of descending ``vals_sorted [.., K]`` whose
    cumulative norm is closest to ``target_norm [..]`` (at least 1)."""
    cum = vals_sorted.pow(2).cumsum(-1).sqrt()
    return (cum - target_norm.unsqueeze(-1)).abs().argmin(-1) + 1


class TopAFASAE(SelectingSAE):
    name: ClassVar[str] = "top_afa"
    saelens_architecture: ClassVar[str] = "top_afa"
    hparam_defaults: ClassVar[dict[str, Any]] = {"k": None, "afa_coefficient": 0.0}
    member_hparams = ("k", "afa_coefficient")
    uses_auxk = True

    @classmethod
    def resolve_hparams(cls, given, *, d_in, d_sae):
        hp = super().resolve_hparams(given, d_in=d_in, d_sae=d_sae)
        if hp["k"] is None:
            hp["k"] = min(d_in, d_sae)
        return hp

    @classmethod
    def check_hparams(cls, hp, *, d_in, d_sae):
        super().check_hparams(hp, d_in=d_in, d_sae=d_sae)
        if hp["afa_coefficient"] < 0:
            raise UntwineError(f"afa_coefficient must be >= 0, got {hp['afa_coefficient']}")

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

    def hand_gradients(self) -> bool:
        return all(h["afa_coefficient"] == 0 for h in self.hparams)

    def penalty(self, enc: Encoded, xn: Tensor, progress: float):
        coef = self.member_tensor("afa_coefficient")
        if not bool((coef > 0).any()):
            return None
        f_norm = (enc.values * self.W_dec.norm(dim=-1).gather(-1, enc.indices.flatten(1)).view_as(enc.values)).norm(dim=-1)
        z_norm = self.centered(xn).norm(dim=-1)
        return coef * (f_norm - z_norm).pow(2).mean(-1)

    def saelens_config(self, m, scale):
        return {"k": int(self.hparams[m]["k"])}
