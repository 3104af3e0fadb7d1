"""Hand-written training gradients shared by the architectures (no autograd).

With ``x_hat = sum_j f_j W_dec[j] + b_dec``, ``e = x - x_hat`` and the loss ``mean_rows
||e||^2`` (plus AuxK, plus a penalty an architecture adds), the gradient touches only the
non-zero codes.  :func:`pick_gradients` takes them as one flat list of picks (row,
latent) over the members, so rows may hold different numbers of latents (BatchTopK's
picks, JumpReLU's and ReLU's non-zero codes); every product costs ``picks * d_in``
instead of a dense ``B * d_sae * d_in``.  :func:`finish_gradients` adds AuxK and sets the
parameters' ``.grad``; :func:`auxk_gradients` is AuxK's gradient on the dead latents'
columns (as :meth:`~untwine.sae.base.SparseAutoencoder.auxk_loss`).  Each path is checked
against autograd in float64 (``tests/test_sae_fast_paths.py``, ``tests/test_sae_registry.py``).
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

from untwine.sae.base import Encoded, SparseAutoencoder

#: the fraction of non-zero codes from which dense matrix products beat the picks' gathers
DENSE_FROM = 0.02

#: methods the hand-written gradients reproduce: overriding one changes the loss
LOSS_METHODS = (
    "penalty", "loss_terms", "training_loss", "encode_batch", "decode_encoded", "sparse_decode", "centered",
    "pre_acts", "gather_pre", "auxk_loss", "auxk_keep", "auxk_weight", "auxk_columns",
)

def finish_gradients(self: SparseAutoencoder, xn, xc, pre, err, g_x, g_dec, g_enc_t, g_benc, enc, dead_rows) -> dict[str, Tensor]:
    """AuxK's terms added to the reconstruction gradients (``g_dec``, ``g_enc_t`` ``[M, h, d]``,
    ``g_benc [M, h]``), then every parameter's ``.grad`` set; the terms.

    ``b_dec``'s gradient through the centred input needs only the rows' sum of ``d loss /
    d xc``: ``sum_rows g_pre W_enc^T = W_enc g_benc``, a matrix-vector product (no
    ``[B, d_in]`` product)."""
    B, h = xn.shape[0], self.d_sae
    terms = {"mse": err.pow(2).sum(-1).mean(-1)}
    dead = self.dead_after(enc.fired(h), B, dead_rows)
    if self.uses_auxk and bool(dead.any()):
        terms["auxk"] = auxk_gradients(self, xc, pre, err, dead, g_dec, g_enc_t, g_benc)
    g_bdec = g_x.sum(1)
    if self.center_input:
        g_bdec = g_bdec - torch.bmm(self.W_enc, g_benc.unsqueeze(-1)).squeeze(-1)
    for param, grad in ((self.W_dec, g_dec), (self.W_enc, g_enc_t.transpose(1, 2)), (self.b_enc, g_benc), (self.b_dec, g_bdec)):
        # the parameter's own memory layout (fused Adam walks grads and parameters alike)
        param.grad = grad if grad.stride() == param.stride() else torch.empty_like(param).copy_(grad)
    return terms


def pick_gradients(self: SparseAutoencoder, xn: Tensor, xc: Tensor, pre: Tensor, rows: Tensor, cols: Tensor, counts: list[int],
                   dead_rows: int, g_extra: Tensor | None = None) -> tuple[dict[str, Tensor], Encoded, Tensor, Tensor]:
    """The hand-written gradient for picks given as one flat list over the members: ``rows``
    into ``M * B`` (member-major), ``cols`` into ``M * d_sae``, ``counts[m]`` of them for
    member ``m`` (in order); codes ``ReLU(pre)`` at the picks.  For selections whose rows
    hold different numbers of latents (BatchTopK): every product touches the picks only.
    ``g_extra [picks]``: a penalty's derivative with respect to the codes, added to the
    reconstruction's.  Returns the terms, an :class:`Encoded` holding each member's picks as
    one row ``[M, 1, max count]`` (what :meth:`update_state` needs: which latents fired, the
    values), ``d loss / d x_hat [M, B, d_in]`` and the codes at the picks (for a penalty's
    own gradients)."""
    M, h, d = self.members, self.d_sae, self.d_in
    B = xn.shape[0]
    top = pre.reshape(M * B, h)[rows, cols - rows.div(B, rounding_mode="floor") * h]
    vals = top.clamp_min(0)
    gate = (top > 0).to(top.dtype)
    wd = self.W_dec.reshape(M * h, d).index_select(0, cols)
    x_hat = torch.zeros(M * B, d, dtype=xn.dtype, device=xn.device).index_add_(0, rows, vals.unsqueeze(1) * wd)
    err = xn.unsqueeze(0) - x_hat.view(M, B, d) - self.b_dec.unsqueeze(1)
    g_x = err * (-2.0 / B)
    g_xr = g_x.reshape(M * B, d).index_select(0, rows)
    g_vals = (wd * g_xr).sum(-1)
    g_vals = (g_vals if g_extra is None else g_vals + g_extra) * gate
    zeros = torch.zeros(M * h, d, dtype=xn.dtype, device=xn.device)
    g_dec = zeros.index_add(0, cols, vals.unsqueeze(1) * g_xr)
    g_enc_t = zeros.index_add_(0, cols, g_vals.unsqueeze(1) * xc.reshape(M * B, d).index_select(0, rows))
    g_benc = torch.zeros(M * h, dtype=xn.dtype, device=xn.device).index_add_(0, cols, g_vals)
    fired = torch.zeros(M * h, dtype=torch.bool, device=xn.device)
    fired[cols[vals != 0]] = True
    per = torch.zeros(M, max(counts), dtype=vals.dtype, device=vals.device)
    for m, part in enumerate(vals.split(counts)):
        per[m, : part.numel()] = part
    enc = Encoded(per.unsqueeze(1), None, pre, xc, _fired=fired.view(M, h))
    terms = finish_gradients(self, xn, xc, pre, err, g_x, g_dec.view(M, h, d), g_enc_t.view(M, h, d), g_benc.view(M, h),
                             enc, dead_rows)
    terms["l0"] = (per != 0).sum(-1).float() / B
    return terms, enc, g_x, vals


def dense_gradients(self: SparseAutoencoder, xn: Tensor, xc: Tensor, pre: Tensor, live: Tensor, dead_rows: int,
                    g_extra: Tensor | None = None) -> tuple[dict[str, Tensor], Encoded, Tensor, Tensor]:
    """:func:`pick_gradients` for the dense codes ``pre`` where ``live [M, B, d_sae]`` (bool,
    ``pre > 0`` there) and 0 elsewhere (their derivative with respect to the pre-activations:
    1 there, 0 elsewhere), as batched matrix products: faster once a good part of the codes
    are non-zero.  ``g_extra`` broadcasts to the codes.  Returns the terms, the codes as
    :class:`Encoded`, ``d loss / d x_hat`` and the rows' sum of the codes ``[M, d_sae]``."""
    B = xn.shape[0]
    mask = live.to(pre.dtype)  # one conversion of the mask, reused (a bool operand converts every time)
    codes = pre * mask
    err = xn.unsqueeze(0) - torch.baddbmm(self.b_dec.unsqueeze(1), codes, self.W_dec)
    g_x = err * (-2.0 / B)
    g_pre = torch.bmm(g_x, self.W_dec.transpose(1, 2))
    if g_extra is not None:
        g_pre += g_extra
    g_pre *= mask
    total = codes.sum(1)
    enc = Encoded(codes, None, pre, xc, _fired=total > 0)  # non-negative codes: fired where the sum is positive
    g_enc = torch.bmm(xc.transpose(1, 2), g_pre)  # W_enc's own layout
    terms = finish_gradients(self, xn, xc, pre, err, g_x, torch.bmm(codes.transpose(1, 2), g_x), g_enc.transpose(1, 2),
                             g_pre.sum(1), enc, dead_rows)
    terms["l0"] = mask.sum(-1).float().mean(-1)
    return terms, enc, g_x, total


def masked_gradients(self: SparseAutoencoder, xn: Tensor, xc: Tensor, pre: Tensor, live: Tensor, dead_rows: int,
                     latent_extra: Tensor | None = None) -> tuple[dict[str, Tensor], Encoded, Tensor, Tensor]:
    """The hand-written gradient for the codes ``pre`` where ``live [M, B, d_sae]`` (bool,
    ``pre > 0`` there) and 0 elsewhere (ReLU's, JumpReLU's): :func:`dense_gradients` once
    more than :data:`DENSE_FROM` of them are non-zero, :func:`pick_gradients` over the
    non-zero codes otherwise.  ``latent_extra [M, d_sae]``: a penalty's derivative with
    respect to each latent's code (the same on every row), added to the reconstruction's.
    Returns the terms, the codes as :class:`Encoded`, ``d loss / d x_hat [M, B, d_in]`` and
    the rows' sum of the codes ``[M, d_sae]``."""
    M, _, h = live.shape
    if int(torch.count_nonzero(live)) > DENSE_FROM * live.numel():
        return dense_gradients(self, xn, xc, pre, live, dead_rows, None if latent_extra is None else latent_extra.unsqueeze(1))
    rows, cols, counts = nonzero_picks(live)
    extra = None if latent_extra is None else latent_extra.reshape(-1)[cols]
    terms, enc, g_x, vals = pick_gradients(self, xn, xc, pre, rows, cols, counts, dead_rows, extra)
    total = torch.zeros(M * h, dtype=vals.dtype, device=vals.device).index_add_(0, cols, vals).view(M, h)
    return terms, enc, g_x, total


def nonzero_picks(mask: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """The true entries of ``mask [M, B, d_sae]`` as :func:`pick_gradients`'s flat picks."""
    M, B, h = mask.shape
    rows, lat = mask.reshape(M * B, h).nonzero().unbind(1)
    member = rows.div(B, rounding_mode="floor")
    return rows, member * h + lat, torch.bincount(member, minlength=M).tolist()


def defined_by(cls: type, method: str) -> type:
    """The class of ``cls``'s MRO whose own body defines ``method``."""
    return next(c for c in cls.__mro__ if method in c.__dict__)


@cache  # asked at every training step: once per class
def same_loss_as(cls: type, owner: type) -> bool:
    """Whether ``cls`` computes ``owner``'s loss: no loss method overridden below ``owner``
    (a subclass that changes the loss trains through autograd)."""
    return all(defined_by(cls, m) in owner.__mro__ for m in LOSS_METHODS)


def auxk_gradients(self: SparseAutoencoder, xc, pre, residual, dead, g_dec, g_enc_t, g_benc) -> Tensor:
    """AuxK (as :meth:`~untwine.sae.base.SparseAutoencoder.auxk_loss`) on the dead
    latents' columns of ``pre``; adds its gradients in place and returns the loss ``[M]``."""
    M = self.members
    k_aux, n_dead, cols = self.auxk_columns(dead)
    pd = pre[:, :, cols]
    keep = self.auxk_keep(pd, dead[:, cols], k_aux)
    gate = (pd > 0).to(pd.dtype) * keep
    a = pd * gate
    wd = self.W_dec[:, cols]  # [M, n, d]
    diff = torch.bmm(a, wd) - residual
    weight = self.auxk_weight(residual, n_dead, k_aux)
    g_e = diff * (2.0 * self.aux_coefficient * weight).view(M, 1, 1)
    g_dec[:, cols] += torch.bmm(a.transpose(1, 2), g_e)
    g_a = torch.bmm(g_e, wd.transpose(1, 2)) * gate
    g_enc_t[:, cols] += torch.bmm(g_a.transpose(1, 2), xc)
    g_benc[:, cols] += g_a.sum(1)
    return weight * diff.pow(2).sum((1, 2))
