"""``batchtopk``: top ``k * batch`` activations over the whole batch (Bussmann et al. 2024,
"BatchTopK Sparse Autoencoders").

While training, ``ReLU`` pre-activations of the batch compete together: the ``k * B``
largest survive, so rows may use more or fewer than ``k`` latents.  A global threshold
``theta`` is learnt as an exponential moving average (rate ``threshold_rate``, SAELens's
0.01) of the smallest surviving activation; at inference ``f_i = ReLU(pre_i) * [pre_i >
theta]``, a per-row rule, so a trained BatchTopK SAE encodes one row at a time and the
codes of a row do not depend on the batch (a loaded file whose thresholds differ by
latent, ``theta * ||d_i||`` after folding decoder norms, keeps them per latent).  Saved as
SAELens ``jumprelu`` with ``threshold = theta`` for every latent (what SAELens's own
BatchTopK saves for inference).

Training lays the batch's picks out per row (padded to the busiest row) and trains as a
:class:`~untwine.sae.selecting.SelectingSAE`: sparse decoding and the hand-written
gradient, with no dense ``[B, d_sae]`` codes or autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from untwine.errors import UntwineError
from untwine.sae.base import Encoded
from untwine.sae.hparams import hparam
from untwine.sae.registry import register
from untwine.sae.saelens_keys import boolean, cfg_value, pos_number
from untwine.sae.selecting import SelectingSAE, Selection
from untwine.sae.sparse_grad import pick_gradients
from untwine.sae.topk import TOPK_TRAINING_KEYS, fold_saelens_decoder_norms


class BatchTopKSAE(SelectingSAE):
    """the k * batch largest activations of a batch; a learnt threshold at inference (SAELens: jumprelu)"""

    name: ClassVar[str] = "batchtopk"

    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="mean active latents per row", member=True, low=1)
        threshold_rate: float = hparam(0.01, doc="rate of the threshold's moving average, in (0, 1]", above=0)

    saelens_architecture: ClassVar[str] = "jumprelu"
    #: SAELens's BatchTopK training checkpoints (their exports are jumprelu files, read as jumprelu)
    saelens_reads = ("batchtopk",)
    # a BatchTopK training checkpoint: k is an average count (a float), rescaling defaults to true
    saelens_keys = {"batchtopk": {"k": (100, pos_number), "rescale_acts_by_decoder_norm": (True, boolean)}}
    saelens_training_keys = {"batchtopk": TOPK_TRAINING_KEYS + ("topk_threshold_lr",)}
    extra_tensor_shapes = {"threshold": ("d_sae",)}
    uses_auxk = True

    def __init__(self, d_in, d_sae, members=None, *, generator=None):
        super().__init__(d_in, d_sae, members, generator=generator)
        # -1: not yet set (the first batch sets it directly)
        self.register_buffer("threshold", torch.full((self.members,), -1.0))
        #: per-latent thresholds ``[d_sae]`` of a loaded file (SAELens's JumpReLU export has
        #: ``theta * ||d_i||``, differing by latent); training drops them
        self.latent_threshold: Tensor | None = None

    @classmethod
    def check_hparams(cls, hp, *, d_in, d_sae):
        super().check_hparams(hp, d_in=d_in, d_sae=d_sae)
        if hp["threshold_rate"] > 1:
            raise UntwineError(f"threshold_rate must be in (0, 1], got {hp['threshold_rate']}")

    def hand_gradients(self) -> bool:
        # encode_batch only adds the inference rule: training encodes as SelectingSAE does
        return True

    def batch_picks(self, pre: Tensor) -> tuple[Tensor, Tensor, list[int]]:
        """Each member's ``k * B`` largest pre-activations of ``pre [M, B, d_sae]`` as one flat
        list: ``(rows into M * B, columns into M * d_sae, count per member)``, sorted by row
        within a member.  (Picking on ``pre`` rather than ``ReLU(pre)`` changes no code: a
        non-positive pick is 0 either way.)"""
        M, B, h = pre.shape
        rows, cols, counts = [], [], []
        for m, k in enumerate(self.member_ints("k")):
            flat = self._top_entries(m, pre[m].reshape(-1), min(k * B, B * h)).sort()[0]
            r = flat.div(h, rounding_mode="floor")
            rows.append(r + m * B)
            cols.append(flat - r * h + m * h)
            counts.append(flat.numel())
        return torch.cat(rows), torch.cat(cols), counts

    @torch.no_grad()
    def _top_entries(self, m: int, values: Tensor, n: int) -> Tensor:
        """Indices of the ``n`` largest of ``values``.  Exact; fast when a guess of the
        ``n``-th largest (the previous batch's, a little lower) leaves at least ``n`` entries
        above it: only those compete (a full selection otherwise).  The guess is a speed hint,
        no state: the picks are the same without it."""
        hints = self.__dict__.setdefault("_pick_hints", {})
        guess = hints.get(m)
        idx = None
        if guess is not None and n < values.numel():
            cand = (values > guess).nonzero().squeeze(1)
            if cand.numel() >= n:
                idx = cand[values[cand].topk(n, sorted=False)[1]]
        if idx is None:
            idx = values.topk(n, sorted=False)[1]
        low = float(values[idx].min())
        hints[m] = low - 0.05 * max(abs(low), 1e-3)
        return idx

    def select(self, xn: Tensor) -> Selection:
        """The picks laid out per row, ``[M, B, K]`` padded to the busiest row with weight-0
        slots (the autograd path's form; training's hand-written path keeps them flat)."""
        xc = self.centered(xn)
        pre = self.pre_acts(xn, xc)
        M, B, h = pre.shape
        rows, cols, _ = self.batch_picks(pre)
        counts = torch.bincount(rows, minlength=M * B)
        rank = torch.arange(rows.numel(), device=rows.device) - (counts.cumsum(0) - counts)[rows]
        K = int(counts.max())
        slot = rows * K + rank
        idx = torch.zeros(M * B * K, dtype=torch.long, device=pre.device)
        weight = torch.zeros(M * B * K, dtype=pre.dtype, device=pre.device)
        idx[slot] = cols - rows.div(B, rounding_mode="floor") * h
        weight[slot] = 1.0
        return Selection(xc, pre, idx.view(M, B, K), weight.view(M, B, K))

    def _hand_gradients(self, xn: Tensor, dead_rows: int):
        xc = self.centered(xn)
        pre = self.pre_acts(xn, xc)
        return pick_gradients(self, xn, xc, pre, *self.batch_picks(pre), dead_rows)[:2]

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:
        if train:
            return super().encode_batch(xn, train=True)
        pre = self.pre_acts(xn)
        if self.latent_threshold is not None:
            thr = self.latent_threshold.to(pre).clamp_min(0).view(1, 1, -1)
        else:
            thr = self.threshold.clamp_min(0).view(-1, 1, 1)
        return Encoded(pre.relu() * (pre > thr), None, pre)

    @torch.no_grad()
    def after_batch(self, enc: Encoded) -> None:
        v = enc.values.detach()
        pos = v > 0
        big = torch.full_like(v, float("inf"))
        mins = torch.where(pos, v, big).amin(dim=(1, 2))
        ok = torch.isfinite(mins)
        rate = self.hparams[0]["threshold_rate"]
        new = torch.where(self.threshold < 0, mins, (1 - rate) * self.threshold + rate * mins)
        self.threshold.copy_(torch.where(ok, new, self.threshold))
        self.latent_threshold = None

    def extra_tensors(self, m, scale, row_norm):
        if self.latent_threshold is not None:
            return {"threshold": (self.latent_threshold.float().cpu().clamp_min(0) * row_norm / scale)}
        theta = max(float(self.threshold[m]), 0.0)
        return {"threshold": (theta * row_norm / scale).float()}

    def load_extra(self, tensors):
        thr = tensors["threshold"].reshape(-1).float()
        self.threshold.fill_(float(thr[0]))
        self.latent_threshold = thr.clone() if bool((thr != thr[0]).any()) else None

    @classmethod
    def saelens_hparams(cls, sl_arch, cfg):
        if sl_arch == "batchtopk":
            return {"k": max(1, round(float(cfg_value(cfg, cls, sl_arch, "k"))))}
        return {}

    @classmethod
    def saelens_tensors(cls, sl_arch, cfg, tensors):
        if "topk_threshold" in tensors and "threshold" not in tensors:
            # a training checkpoint: SAELens exports it as JumpReLU with this threshold everywhere
            thr = float(tensors.pop("topk_threshold").reshape(-1)[0])
            tensors["threshold"] = torch.full((tensors["W_dec"].shape[0],), thr)
        if sl_arch == "batchtopk" and cfg_value(cfg, cls, sl_arch, "rescale_acts_by_decoder_norm"):
            fold_saelens_decoder_norms(tensors)

    def untwine_hparams(self, m, scale):
        out = super().untwine_hparams(m, scale)
        out["threshold"] = max(float(self.threshold[m]), 0.0) / scale
        return out


register(BatchTopKSAE)
