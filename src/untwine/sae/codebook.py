"""``codebook``: codebook features as a standalone dictionary (Tamkin, Taufeeque & Goodman
2023, "Codebook Features: Sparse and Discrete Interpretability for Neural Networks").

A codebook is ``d_sae`` vectors ``c_j`` (the decoder rows ``W_dec``).  An activation is
replaced by the *sum* of the ``k`` codebook vectors with the highest cosine similarity to it::

    S = top-k_j cos(x - b_dec, c_j)        x_hat = sum_{j in S} c_j + b_dec

(``x`` instead of ``x - b_dec`` when ``center_input`` is off; with ``b_dec = 0`` this is the
paper's bottleneck exactly).  Nothing scales the chosen vectors: a code is on or off, so the
vectors' norms are learnt (no unit-norm constraint, never folded on export) and the choice
ignores them (cosine).  The codes (``encode``, ``evaluate``) are k-hot: 1 at the ``k``
chosen latents, 0 elsewhere, so ``decode(encode(x))`` is the forward pass exactly
(``codes @ W_dec + b_dec``); the similarities themselves are not codes.  There is no
encoder: the codebook is both dictionary and encoder, as matching pursuit's atoms are.

Training, here: the reconstruction loss ``||x - x_hat||^2`` only, through autograd.  The
choice of codes is discrete (no gradient); the chosen vectors and ``b_dec`` get the
gradient of the error.  Optionally (``replace_rows`` > 0; off by default, as in the paper's
released configuration) a code no row chose for ``replace_rows`` rows is replaced, after a
batch, by the centred input of one of the batch's worst-reconstructed rows divided by ``k``
(the paper replaces unused codes by random inputs, with outputs averaging their ``k`` codes;
divided by ``k`` the same vector under this sum; untwine takes the worst rows, so a run is
deterministic).  On the synthetic benchmark's default case replacing after 16384 rows
recovered the dictionary less well than never replacing (MMCS 0.945 against 0.979).  The codebook starts at random directions of norm ``sqrt(d_in / k)``, so ``k``
codes sum to about the norm of a normalised input.  Codebooks can collapse: in
``benchmarks/vision_sae.py``'s sweep one of six layers (a beta-VAE's early conv layer, 32
channels) ended with every row choosing the same 8 of 256 codes (FVU 1.0, reported as such by
``evaluate``; the same layer trained alone, on 13 seeds: FVU 0.10 to 0.28).  Starting the
vectors at centred sample rows / k instead avoided that but fitted the six layers worse (FVU
0.33 to 0.40 against 0.08 to 0.35) and the synthetic case no better, so it was not adopted.
Replacing unused codes is what helps on such layers: with ``replace_rows`` 1536 (3 batches of
that benchmark) the collapsed sweep reached FVU 0.009, and trained alone with 2048 the six layers went
from FVU 0.23, 0.23, 0.26, 0.05, 0.16, 0.33 with 68-93% of the codes unused to 0.017, 0.092,
0.094, 0.003, 0.24, 0.25 with none unused (worse on one layer); on the synthetic case it costs
MMCS (0.943 at 4096 rows, 0.954 at 65536, against 0.979) and FVU (0.36-0.38 against 0.32),
where 12.5% of the codes are rightly unused (512 codes, 256 true features).  So the default
stays off, the paper's released configuration, and on a network's activations try it on.

How this differs from the paper's codebooks, which are bottlenecks *inside* a network: there
each layer's (layer-normed) activation is replaced by its codebook output on the forward
pass and the whole network is fine-tuned with its own task loss (plus a weighted
reconstruction term, their ``aeloss``); the discrete choice is bridged by a straight-through
estimator (the gradient at the output passes to the input unchanged), so the network's
upstream weights learn to produce activations that snap well, and the codes must carry what
the downstream layers use.  Here the network is fixed: the codebook is fitted afterwards to
recorded activations, on reconstruction alone, like every other SAE of the registry; no
gradient needs to reach the input, so no straight-through estimator is involved, and a good
fit means only that the activations are near sums of ``k`` codes, not that the network
computes with them.  Their released code also averages the ``k`` codes instead of summing
them (a factor ``k`` in the codebook's scale, nothing else) and puts weight decay on the
codebook.  SAELens has no codebook architecture: ``cfg.json`` says ``codebook`` (with ``k``)
and only untwine loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from untwine.sae.base import Encoded, SparseAutoencoder
from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae.saelens_keys import pos_int
from untwine.sae.topk import topk_mask


class CodebookSAE(SparseAutoencoder):
    """sum of the k codebook vectors most cosine-similar to the input (Tamkin et al. 2023; untwine's own: codebook)"""

    name: ClassVar[str] = "codebook"

    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="codebook vectors summed per row", member=True, low=1)
        replace_rows: int = hparam(
            0, doc="a code unused for this many training rows is replaced by an input (0: never)", member=True, low=0,
        )

    # the codebook's scale is learnt from a small start (no unit norm): Adam needs larger steps
    # (on the synthetic benchmark's data 3e-2 recovered the dictionary, 3e-3 had not in 256 steps)
    default_lr: ClassVar[float] = 3e-2
    saelens_architecture: ClassVar[str] = "codebook"
    saelens_reads = ("codebook",)
    saelens_keys = {"codebook": {"k": (None, pos_int)}}
    has_encoder = False
    unit_norm_decoder = False
    fold_decoder_norms = False

    def __init__(self, d_in, d_sae, members=None, *, generator=None):
        super().__init__(d_in, d_sae, members, generator=generator)
        with torch.no_grad():  # k codes of norm sqrt(d_in / k) sum to about an input's norm sqrt(d_in)
            ks = torch.tensor(self.member_ints("k"), dtype=self.W_dec.dtype)
            self.W_dec.mul_((self.d_in / ks).sqrt().view(-1, 1, 1))

    def choose(self, xc: Tensor) -> Tensor:
        """``[M, B, max k]`` indices of the codes most cosine-similar to the centred inputs
        ``xc`` (most similar first where members differ in ``k``); no gradient."""
        with torch.no_grad():
            unit = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            # cos(x, c) = <x, c / |c|> / |x|: within a row, |x| does not change the order
            sims = torch.bmm(xc, unit.transpose(1, 2))
            ks = self.member_ints("k")
            return sims.topk(max(ks), dim=-1, sorted=len(set(ks)) > 1).indices

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        xc = self.centered(xn)
        idx = self.choose(xc)
        mask = topk_mask(self.member_ints("k"), xn.device)
        vals = torch.ones(idx.shape, dtype=xn.dtype, device=xn.device)
        if mask is not None:
            vals = vals * mask
        return Encoded(vals, idx, None, xc)

    @torch.no_grad()
    def after_batch(self, enc: Encoded) -> None:
        """Replace the codes unused for ``replace_rows`` rows (``rows_since_fired``, this
        batch counted) by the centred inputs of the batch's worst-reconstructed rows / k."""
        limits = self.member_ints("replace_rows")
        if not any(limits) or enc.xc is None:
            return
        lim = torch.tensor(limits, device=self.W_dec.device).view(-1, 1)
        dead = (lim > 0) & (self.rows_since_fired >= lim)
        if not bool(dead.any()):
            return
        xc = enc.xc
        xn = xc + self.b_dec.unsqueeze(1) if self.center_input else xc
        err = (xn - self.decode_encoded(enc)).pow(2).sum(-1)  # [M, B]
        order = err.argsort(dim=-1, descending=True)
        ks = self.member_ints("k")
        for m in dead.any(-1).nonzero().flatten().tolist():
            codes = dead[m].nonzero().flatten()
            rows = order[m, torch.arange(codes.numel(), device=codes.device) % order.shape[1]]
            self.W_dec[m, codes] = xc[m, rows].to(self.W_dec.dtype) / ks[m]

    @torch.no_grad()
    def export(self, m: int = 0):
        """The codes are 0/1, not scaled by the input normalisation ``s``: the codebook itself
        is divided by ``s`` (the cosine choice does not change)."""
        out, cfg = super().export(m)
        out["W_dec"] = (out["W_dec"] / float(self.input_scale)).contiguous()
        return out, cfg

    def saelens_config(self, m, scale):
        return {"k": int(self.hparams[m]["k"])}

    @classmethod
    def saelens_hparams(cls, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"k": int(cfg["k"])}


register(CodebookSAE)
