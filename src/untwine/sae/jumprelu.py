"""``jumprelu``: per-latent thresholds trained with a straight-through estimator
(Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with
JumpReLU Sparse Autoencoders"; Gemma Scope).

``f_i = pre_i * H(pre_i - theta_i)`` with ``theta = exp(log_threshold) > 0``; loss
``||x - x_hat||^2 + l0 * sum_i H(pre_i - theta_i)``.  ``H`` has zero derivative almost
everywhere, so the gradient with respect to ``theta`` uses the kernel density estimate of
that paper: the rectangle kernel ``K(u) = [|u| < 1/2]`` of width ``bandwidth``:

* ``d f_i / d theta_i  ~ -(theta_i / bandwidth) K((pre_i - theta_i) / bandwidth)``
* ``d H_i / d theta_i  ~ -(1 / bandwidth)      K((pre_i - theta_i) / bandwidth)``

while ``d f_i / d pre_i = H(pre_i - theta_i)`` and ``H`` passes no gradient to ``pre``.
Thresholds start at ``init_threshold``.  Decoder rows are free, starting at norm 0.1 with
``W_enc = W_dec^T`` (SAELens's initialisation; the norms are folded in at export), and
``b_enc`` learns at ``sqrt(d_in)`` times the learning rate
(:attr:`~untwine.sae.base.SparseAutoencoder.encoder_bias_lr_scaled`).  Defaults
(``l0_coefficient`` 3, ``bandwidth`` 0.2, ``init_threshold`` 0.1, ``threshold_lr_scale`` 2,
learning rate 1e-2) are for inputs normalised to norm ``sqrt(d_in)``, where a latent's
pre-activation starts near 0.1 (decoder rows of norm 0.1): the bandwidth is SAELens's 0.05
on raw inputs scaled by the normalisation (about 4) of untwine's synthetic benchmark, the
thresholds start at that typical pre-activation, and as Adam moves ``log theta`` by about
the learning rate per step, ``threshold_lr_scale`` (a multiplier of the thresholds' rate
alone) lets them rise 2% a step.  At SAELens's L0 on that benchmark (1.30 and 1.36 on
seeds 0 and 1, its ``l0_coefficient`` 1) untwine's (``l0_coefficient`` 17: L0 1.38 and
1.31) reaches MMCS 0.994 and 0.994 against 0.965 and 0.966, FVU 0.48 and 0.49 against 0.51
and 0.50; with unit-norm rows and thresholds from 2 (before), MMCS was 0.90.  The default 3
gives L0 3.5, FVU 0.13, MMCS 0.993 there.
SAELens: ``jumprelu`` with a ``threshold`` tensor.  Training
writes the gradient out (:mod:`untwine.sae.sparse_grad`): the reconstruction over the
non-zero codes (dense products once more than 2% are), the thresholds' estimate over the
pre-activations inside the kernel's window (one dense product while more than 2% are inside,
as early in training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae import sparse_grad
from untwine.sae.sparse_grad import masked_gradients, nonzero_picks, same_loss_as


def _rect(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        g_pre = (pre > theta).to(g.dtype) * g
        g_theta = (-(theta / bw) * _rect((pre - theta) / bw) * g).sum(1, keepdim=True)
        return g_pre, g_theta, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        g_theta = (-(1.0 / bw) * _rect((pre - theta) / bw) * g).sum(1, keepdim=True)
        return None, g_theta, None


class JumpReLUSAE(SparseAutoencoder):
    """per-latent thresholds trained by a straight-through estimator, L0 penalty (SAELens: jumprelu)"""

    name: ClassVar[str] = "jumprelu"

    @dataclass(kw_only=True)
    class Params:
        l0_coefficient: float = hparam(3.0, doc="weight of the L0 penalty", member=True, low=0)
        bandwidth: float = hparam(0.2, doc="width of the straight-through kernel", above=0)
        init_threshold: float = hparam(0.1, doc="initial threshold", above=0)
        threshold_lr_scale: float = hparam(2.0, doc="learning-rate multiplier of the thresholds", above=0)

    default_lr = 1e-2
    saelens_architecture: ClassVar[str] = "jumprelu"
    saelens_reads = ("jumprelu",)
    saelens_keys = {"jumprelu": {}}
    saelens_training_keys = {"jumprelu": (
        "decoder_init_norm", "jumprelu_init_threshold", "jumprelu_bandwidth", "jumprelu_sparsity_loss_mode",
        "l0_coefficient", "l0_warm_up_steps", "pre_act_loss_coefficient", "jumprelu_tanh_scale",
        "jumprelu_ste_to_input", "target_l0",
    )}
    extra_tensor_shapes = {"threshold": ("d_sae",)}
    unit_norm_decoder = False
    decoder_init_norm = 0.1
    encoder_bias_lr_scaled = True

    def __init__(self, d_in, d_sae, members=None, *, generator=None):
        super().__init__(d_in, d_sae, members, generator=generator)
        init = math.log(self.hparams[0]["init_threshold"])
        self.log_threshold = nn.Parameter(torch.full((self.members, 1, d_sae), init))

    def optim_groups(self):
        groups = [dict(g, params=[p for p in g["params"] if p is not self.log_threshold]) for g in super().optim_groups()]
        return groups + [{"params": [self.log_threshold], "lr_scale": float(self.hparams[0]["threshold_lr_scale"])}]

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        pre = self.pre_acts(xn)
        theta = self.log_threshold.exp()
        if not train:
            return Encoded(pre * (pre > theta), None, pre)
        return Encoded(_JumpReLU.apply(pre, theta, self.hparams[0]["bandwidth"]), None, pre)

    def penalty(self, enc: Encoded, xn: Tensor, progress: float) -> Tensor:
        theta = self.log_threshold.exp()
        l0 = _Step.apply(enc.pre, theta, self.hparams[0]["bandwidth"]).sum(-1).mean(-1)
        return self.member_tensor("l0_coefficient") * l0

    def gradients(self, xn: Tensor, *, progress: float, dead_rows: int):
        """The loss's gradient written out (:mod:`untwine.sae.sparse_grad`): the reconstruction
        over the non-zero codes only, the thresholds' kernel estimates over the pre-activations
        inside the kernel's window only; autograd for a subclass that changes the loss."""
        if not same_loss_as(type(self), JumpReLUSAE):
            return super().gradients(xn, progress=progress, dead_rows=dead_rows)
        with torch.no_grad():
            M, B, h, d = self.members, xn.shape[0], self.d_sae, self.d_in
            xc = self.centered(xn)
            pre = self.pre_acts(xn, xc)
            theta = self.log_threshold.exp()  # [M, 1, h]
            live = pre > theta
            terms, enc, g_x, _ = masked_gradients(self, xn, xc, pre, live, dead_rows)
            coef = self.member_tensor("l0_coefficient").to(xn.dtype)
            terms["penalty"] = coef * torch.count_nonzero(live, dim=(1, 2)).to(xn.dtype) / B
            # d/d theta: -(1/bw) K((pre - theta)/bw) (theta * d loss/d f + coef / B), rows summed,
            # over the pre-activations inside the kernel's window (early in training a good
            # part of them: then as one dense product)
            bw = self.hparams[0]["bandwidth"]
            window = ((pre - theta) / bw).abs_() < 0.5
            th = theta.reshape(M * h)
            if int(torch.count_nonzero(window)) > sparse_grad.DENSE_FROM * window.numel():
                inside = window.to(xn.dtype)
                g_f = (torch.bmm(g_x, self.W_dec.transpose(1, 2)) * inside).sum(1).reshape(M * h)
                g_theta = (th * g_f + (coef / B).repeat_interleave(h) * inside.sum(1).reshape(M * h)) * (-1.0 / bw)
            else:
                rw, cw, _ = nonzero_picks(window)
                g_f = (g_x.reshape(M * B, d).index_select(0, rw) * self.W_dec.reshape(M * h, d).index_select(0, cw)).sum(-1)
                g = (th[cw] * g_f + (coef / B)[rw.div(B, rounding_mode="floor")]) * (-1.0 / bw)
                g_theta = torch.zeros(M * h, dtype=xn.dtype, device=xn.device).index_add_(0, cw, g)
            self.log_threshold.grad = (g_theta * th).view(M, 1, h)
        return terms, enc

    def extra_tensors(self, m, scale, row_norm):
        return {"threshold": (self.log_threshold[m, 0].detach().float().cpu().exp() * row_norm / scale)}

    @torch.no_grad()
    def load_extra(self, tensors):
        thr = tensors["threshold"].to(self.log_threshold).clamp_min(1e-30)
        self.log_threshold.copy_(thr.log().view(1, 1, -1))


register(JumpReLUSAE)
