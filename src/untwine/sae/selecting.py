"""Architectures that *select* their active latents, and their hand-written gradients.

TopK and Top-AFA choose, per row, a set of latents from the dense pre-activations (a
no-grad choice); the codes are then ``ReLU(pre)`` at the chosen latents, times a constant
slot weight (0 for unused slots).  Subclasses implement :meth:`SelectingSAE.select`.

Training such an SAE through autograd pays for generic machinery (the sorts of
``embedding`` backward passes, the engine's bookkeeping) on a computation whose gradient is
short and sparse.  :meth:`SelectingSAE.gradients` writes it out instead: with ``x_hat =
sum_k v_k W_dec[j_k] + b_dec``, ``e = x - x_hat`` and the loss ``mean_rows ||e||^2`` (plus
AuxK), every product touches only the ``K`` selected latents of a row (``B * K * d_in``
operations; AuxK: the dead latents' columns), and the dense pre-activations computed for
the selection are reused by AuxK.  ``tests/test_sae_registry.py`` checks that the training
gradients and loss terms equal autograd's on
:meth:`~untwine.sae.base.SparseAutoencoder.training_loss` (double precision) for every
registered architecture and for plug-ins.

The hand-written path knows only the reconstruction and AuxK terms of the base class.  A
subclass that changes the loss (a :meth:`~untwine.sae.base.SparseAutoencoder.penalty`, its
own ``loss_terms``, encoding, decoding, pre-activations or AuxK) trains through autograd
unless the same class (or a subclass of it) also overrides :meth:`SelectingSAE.hand_gradients`
to say when the hand-written gradient is still exact (Top-AFA: while its norm-matching
coefficient is 0).  Decided when the class is defined (:attr:`SelectingSAE.hand_path_exact`);
and a penalty that is not None on the hand-written path switches that step to autograd.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.sparse_grad import LOSS_METHODS, defined_by, finish_gradients


class Selection(NamedTuple):
    """A no-grad choice of latents for a batch (every tensor per member)."""

    #: centred inputs ``[M, B, d_in]``
    xc: Tensor
    #: dense pre-activations ``[M, B, d_sae]``
    pre: Tensor
    #: chosen latents ``[M, B, K]``
    indices: Tensor
    #: slot weights broadcastable to ``[M, B, K]`` (None: all ones)
    weight: Tensor | None


class SelectingSAE(SparseAutoencoder):
    """Base of the selecting architectures (see the module docstring)."""

    #: the hand-written gradient is that of this class's loss (set for each subclass: no
    #: loss method overridden below the class that last overrode :meth:`hand_gradients`)
    hand_path_exact: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        decides = defined_by(cls, "hand_gradients")
        cls.hand_path_exact = all(
            defined_by(cls, m) in (SparseAutoencoder, SelectingSAE) or issubclass(decides, defined_by(cls, m))
            for m in LOSS_METHODS
        )

    def select(self, xn: Tensor) -> Selection:  # pragma: no cover - abstract
        raise NotImplementedError

    def hand_gradients(self) -> bool:
        """Whether the hand-written gradient is exact for this module's hyper-parameters
        (override it together with a penalty that is sometimes None)."""
        return True

    def uses_hand_gradients(self) -> bool:
        """Whether :meth:`gradients` skips autograd (see the module docstring)."""
        return self.hand_path_exact and self.hand_gradients()

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        with torch.no_grad():
            sel = self.select(xn)
        if torch.is_grad_enabled():  # differentiable values of the selected latents only (SparseAutoencoder.gather_pre)
            xc = self.centered(xn)
            pre = self.gather_pre(xc, sel.indices)
        else:
            xc, pre = sel.xc, sel.pre.gather(-1, sel.indices)
        vals = pre.relu()
        if sel.weight is not None:
            vals = vals * sel.weight
        return Encoded(vals, sel.indices, sel.pre, xc)

    def gradients(self, xn: Tensor, *, progress: float, dead_rows: int) -> tuple[dict[str, Tensor], Encoded]:
        if not self.uses_hand_gradients():
            return super().gradients(xn, progress=progress, dead_rows=dead_rows)
        with torch.no_grad():
            terms, enc = self._hand_gradients(xn, dead_rows)
            unseen = self.penalty(enc, xn, progress) is not None
        if unseen:  # a penalty the hand-written path cannot see: this step through autograd
            return super().gradients(xn, progress=progress, dead_rows=dead_rows)
        return terms, enc

    def _hand_gradients(self, xn: Tensor, dead_rows: int) -> tuple[dict[str, Tensor], Encoded]:
        M, h, d = self.members, self.d_sae, self.d_in
        B = xn.shape[0]
        xc, pre, idx, weight = self.select(xn)
        K = idx.shape[-1]
        flat = (idx + (torch.arange(M, device=idx.device) * h).view(M, 1, 1)).reshape(-1)
        top = pre.gather(-1, idx)
        gate = (top > 0).to(top.dtype)
        if weight is not None:
            gate = gate * weight
        vals = top * gate  # [M, B, K]
        wd = self.W_dec.reshape(M * h, d).index_select(0, flat).view(M * B, K, d)
        # (products of a [B*K, d] gather and a sum over K: faster here than B tiny bmm's)
        err = xn.unsqueeze(0) - (vals.view(M * B, K, 1) * wd).sum(1).view(M, B, d) - self.b_dec.unsqueeze(1)
        g_x = err * (-2.0 / B)  # d loss / d x_hat
        g_vals = (wd * g_x.view(M * B, 1, d)).sum(-1) * gate.view(M * B, K)  # d loss / d pre
        g_dec = torch.zeros(M * h, d, dtype=xn.dtype, device=xn.device)
        g_dec.index_add_(0, flat, (vals.view(M * B, K, 1) * g_x.view(M * B, 1, d)).view(-1, d))
        g_enc_t = torch.zeros_like(g_dec).index_add_(0, flat, (g_vals.view(M * B, K, 1) * xc.reshape(M * B, 1, d)).view(-1, d))
        g_benc = torch.zeros(M * h, dtype=xn.dtype, device=xn.device).index_add_(0, flat, g_vals.view(-1))

        enc = Encoded(vals, idx, pre, xc)
        terms = finish_gradients(self, xn, xc, pre, err, g_x, g_dec.view(M, h, d), g_enc_t.view(M, h, d), g_benc.view(M, h),
                                 enc, dead_rows)
        terms["l0"] = (vals != 0).sum(-1).float().mean(-1)
        return terms, enc
