"""``mp``: matching pursuit SAE (Costa et al. 2025, "From Flat to Hierarchical: Extracting
Sparse Representations with Matching Pursuit").

The encoder is the greedy pursuit itself, unrolled: with atoms ``d_j`` (the decoder rows,
unit norm in training) and residual ``r = x - b_dec`` (``r = x`` when ``center_input`` is
off, SAELens's ``apply_b_dec_to_input: false``), repeat ``j = argmax_j <r, d_j>``,
``z_j += c = ReLU(<r, d_j>)``, ``r -= c d_j``.  A row stops, exactly as SAELens's
``matching_pursuit`` decides it, after ``k`` steps (``max_iterations``), or after a step
that left ``||r|| < residual_threshold``, or (``stop_on_duplicate_support``) after a step
that added no new latent to the row's support (``c = 0`` or ``j`` already chosen; that
step's ``c`` still counts).  The first step always runs.  Since ``||r - c d_j||^2 =
||r||^2 - c^2`` for unit atoms the residual norm never rises.  ``x_hat = z D + b_dec =
x - r``; without centring ``x_hat = z D`` (SAELens adds ``b_dec`` back only when it took it
off).  Gradients flow through the selected coefficients and atoms (the choice ``argmax``
itself is discrete).  There is no separate encoder (SAELens's ``matching_pursuit`` is tied
the same way) and no AuxK.  Decoder norms are never folded on export: the pursuit on
rescaled atoms is another pursuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae.saelens_keys import boolean, cfg_value, nonneg_number, pos_int_or_null


class MatchingPursuitSAE(SparseAutoencoder):
    """greedy matching pursuit over the decoder rows, no encoder (SAELens: matching_pursuit)"""

    name: ClassVar[str] = "mp"

    # k counts pursuit steps, not latents: an atom may be chosen again, so k may exceed d_sae
    # (SAELens's max_iterations defaults to d_in whatever d_sae is)
    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="pursuit steps per row (max_iterations)", member=True, low=1)
        residual_threshold: float = hparam(0.0, doc="a row stops once its residual norm is below this", member=True, low=0)
        stop_on_duplicate_support: bool = hparam(False, doc="a row stops after a step adding no new latent", member=True)

    saelens_architecture: ClassVar[str] = "matching_pursuit"
    saelens_reads = ("matching_pursuit",)
    saelens_keys = {"matching_pursuit": {
        "residual_threshold": (1e-2, nonneg_number),
        "max_iterations": (None, pos_int_or_null),
        "stop_on_duplicate_support": (True, boolean),
    }}
    saelens_training_keys = {"matching_pursuit": ("decoder_init_norm",)}
    has_encoder = False
    fold_decoder_norms = False

    @classmethod
    def check_hparams(cls, hp, *, d_in, d_sae):
        """k may exceed d_sae (see :attr:`Params`)."""

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
        dup = self.member_tensor("stop_on_duplicate_support", torch.bool).view(M, 1)
        has_dup = bool(dup.any())
        may_stop = has_dup or bool((thr > 0).any())
        done = torch.zeros(r.shape[:2], dtype=torch.bool, device=r.device)
        rn = r.detach().norm(dim=-1)
        if return_residuals:
            norms.append(rn)
        for t in range(kmax):
            with torch.no_grad():
                j = torch.bmm(r.detach(), Wt).argmax(-1)  # [M, B]
                live = (t < kt) & ~done
            atom = F.embedding(j + offs, flat)  # [M, B, d_in]
            c = (r * atom).sum(-1).relu() * live
            r = r - c.unsqueeze(-1) * atom
            with torch.no_grad():
                rn = r.detach().norm(dim=-1)
                done = done | (rn < thr)
                if has_dup:
                    # the support grew iff c > 0 at a latent no earlier step gave a positive value
                    seen = torch.zeros_like(done)
                    for v_prev, j_prev in zip(vals, idxs):
                        seen |= (j_prev == j) & (v_prev.detach() > 0)
                    done = done | (dup & ~((c.detach() > 0) & ~seen))
            vals.append(c)
            idxs.append(j)
            if return_residuals:
                norms.append(rn)
            elif may_stop and t + 1 < kmax and bool((done | (t + 1 >= kt)).all()):
                break  # every row has stopped: the remaining steps would add nothing
        enc = Encoded(torch.stack(vals, -1), torch.stack(idxs, -1), None)
        return (enc, torch.stack(norms)) if return_residuals else enc

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        return self.pursue(xn)

    def decode_encoded(self, enc: Encoded) -> Tensor:
        if self.center_input:
            return super().decode_encoded(enc)
        # SAELens adds b_dec back only when it was taken off the input
        if enc.indices is None:
            return torch.bmm(enc.values, self.W_dec)
        return self.sparse_decode(enc.values, enc.indices)

    def saelens_config(self, m, scale):
        return {
            "residual_threshold": float(self.hparams[m]["residual_threshold"]) / scale,
            "max_iterations": int(self.hparams[m]["k"]),
            "stop_on_duplicate_support": bool(self.hparams[m]["stop_on_duplicate_support"]),
        }

    @classmethod
    def saelens_hparams(cls, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
        it = cfg_value(cfg, cls, sl_arch, "max_iterations")
        return {
            "k": int(it) if it is not None else int(cfg["d_in"]),
            "residual_threshold": float(cfg_value(cfg, cls, sl_arch, "residual_threshold")),
            "stop_on_duplicate_support": bool(cfg_value(cfg, cls, sl_arch, "stop_on_duplicate_support")),
        }

    def untwine_hparams(self, m, scale):
        out = super().untwine_hparams(m, scale)
        out["residual_threshold"] = float(out["residual_threshold"]) / scale
        return out


register(MatchingPursuitSAE)
