"""``mp``: matching pursuit SAE (Costa et al. 2025, "From Flat to Hierarchical: Extracting
Sparse Representations with Matching Pursuit").

The encoder is the greedy pursuit itself, unrolled: with unit-norm atoms ``d_j`` (the
decoder rows) and residual ``r = x - b_dec``, repeat ``j = argmax_j <r, d_j>``,
``z_j += c = ReLU(<r, d_j>)``, ``r -= c d_j``; stop after ``k`` steps or once ``||r||``
falls below ``residual_threshold``.  Since ``||r - c d_j||^2 = ||r||^2 - c^2`` the residual
norm never rises.  ``x_hat = z D + b_dec = x - r``.  Gradients flow through the selected
coefficients and atoms (the choice ``argmax`` itself is discrete).  There is no separate
encoder (SAELens's ``matching_pursuit`` is tied the same way) and no AuxK.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from untwine.errors import UntwineError
from untwine.sae.base import Encoded, SparseAutoencoder


class MatchingPursuitSAE(SparseAutoencoder):
    name: ClassVar[str] = "mp"
    saelens_architecture: ClassVar[str] = "matching_pursuit"
    hparam_defaults: ClassVar[dict[str, Any]] = {"k": None, "residual_threshold": 0.0}
    member_hparams = ("k", "residual_threshold")
    required_hparams = ("k",)
    has_encoder = False

    @classmethod
    def check_hparams(cls, hp, *, d_in, d_sae):
        super().check_hparams(hp, d_in=d_in, d_sae=d_sae)
        if hp["residual_threshold"] < 0:
            raise UntwineError(f"residual_threshold must be >= 0, got {hp['residual_threshold']}")

    def pursue(self, xn: Tensor, *, return_residuals: bool = False):
        """Run the pursuit: ``(Encoded, residual norms per step [steps + 1, M, B])``."""
        M, h = self.members, self.d_sae
        r = self.centered(xn)
        ks = self.member_ints("k")
        kmax = max(ks)
        kt = torch.tensor(ks, device=r.device).view(M, 1)
        thr = self.member_tensor("residual_threshold").view(M, 1)
        W = self.W_dec
        Wt = W.transpose(1, 2)
        flat = W.reshape(M * h, self.d_in)
        offs = (torch.arange(M, device=r.device) * h).view(M, 1)
        vals, idxs, norms = [], [], []
        rn = r.detach().norm(dim=-1)
        if return_residuals:
            norms.append(rn)
        for t in range(kmax):
            with torch.no_grad():
                j = torch.bmm(r.detach(), Wt).argmax(-1)  # [M, B]
                live = (t < kt) & (rn > thr)
            atom = F.embedding(j + offs, flat)  # [M, B, d_in]
            c = (r * atom).sum(-1).relu() * live
            r = r - c.unsqueeze(-1) * atom
            vals.append(c)
            idxs.append(j)
            rn = r.detach().norm(dim=-1)
            if return_residuals:
                norms.append(rn)
        enc = Encoded(torch.stack(vals, -1), torch.stack(idxs, -1), None)
        return (enc, torch.stack(norms)) if return_residuals else enc

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        return self.pursue(xn)

    def saelens_config(self, m, scale):
        return {
            "residual_threshold": float(self.hparams[m]["residual_threshold"]) / scale,
            "max_iterations": int(self.hparams[m]["k"]),
            "stop_on_duplicate_support": False,
        }

    def untwine_hparams(self, m, scale):
        out = super().untwine_hparams(m, scale)
        out["residual_threshold"] = float(out["residual_threshold"]) / scale
        return out
