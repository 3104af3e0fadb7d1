"""Refusals of :mod:`untwine.sae.train`: values that cannot train, data with nothing to learn, divergence.

* every width and learning rate is a finite number in range (a learning rate in
  ``(0, MAX_LR)``; the hyper-parameters are typed and bounded by each architecture's
  ``Params``), checked before anything is written;
* activations whose rows are all the same (all zero included) are refused: the input
  normalisation would divide by ~0 and every score of the result would be meaningless;
* training stops with one error line when a loss term or a weight is not finite, or the
  reconstruction error exceeds :data:`DIVERGED` times the inputs' mean squared norm (in the
  normalised units the loss uses): a reconstruction that bad is no SAE, and its weights are
  never written.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from untwine._checks import check_seed
from untwine.errors import UntwineError

if TYPE_CHECKING:
    from untwine.sae.data import ActivationSource
    from untwine.sae.specs import SAESpec

#: learning rates from this up are refused (Adam would move unit-norm decoder rows by their length per step)
MAX_LR = 1.0
#: a reconstruction error this many times the inputs' mean squared norm (normalised) means training diverged
DIVERGED = 1e4


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_spec(s: SAESpec) -> None:
    """One error line for a width or learning rate that is not a usable number (the
    hyper-parameters are checked against the architecture's typed ``Params``)."""
    if not _is_number(s.latents) or int(s.latents) != s.latents or s.latents < 1:
        raise UntwineError(f"latents must be a positive integer, got {s.latents!r}")
    if s.lr is not None and not (_is_number(s.lr) and math.isfinite(s.lr) and 0 < s.lr < MAX_LR):
        raise UntwineError(f"learning rate must be a finite number in (0, {MAX_LR:g}), got {s.lr!r}")


def check_run_options(steps, batch_size, checkpoint_every, log_every, seed, lr_warmup, lr_decay, b_dec_init) -> None:
    for name, v in (("steps", steps), ("batch_size", batch_size), ("log_every", log_every)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UntwineError(f"{name} must be a positive integer, got {v!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise UntwineError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    check_seed(seed, "seed")
    for name, v in (("lr_warmup", lr_warmup), ("lr_decay", lr_decay)):
        if not (_is_number(v) and 0 <= v <= 1):
            raise UntwineError(f"{name} must be a fraction in [0, 1], got {v!r}")
    if b_dec_init not in ("geometric_median", "mean", "zeros"):
        raise UntwineError(f"b_dec_init must be geometric_median, mean or zeros, got {b_dec_init!r}")


def check_spread(sample: torch.Tensor, source: ActivationSource) -> float:
    """Refuse activations whose rows are all the same (zero variance); returns their mean squared norm."""
    sq = float(sample.pow(2).sum(-1).mean())
    spread = float((sample - sample.mean(0)).pow(2).sum(-1).mean()) if len(sample) > 1 else 0.0
    if spread <= 1e-12 * sq or sq == 0.0:
        what = "every value is 0" if sq == 0.0 else "every row is the same" if len(sample) > 1 else "there is one row"
        raise UntwineError(f"{source.name}: {what} (zero variance across rows); an SAE has nothing to learn from them")
    return sq


def check_diverged(step: int, groups, log_row: dict | None, limit: float, specs) -> None:
    """One error line when a loss term is not finite, the error exploded past ``limit`` or a weight is not finite."""
    bad = None
    for i, m in enumerate(log_row["members"] if log_row else []):
        mse = m.get("mse", 0.0)
        if not all(math.isfinite(v) for v in m.values()) or mse > limit:
            bad = f"{specs[i].label()}: mse {mse:.3g}"
            break
    if bad is None:
        for g in groups:
            if not all(bool(torch.isfinite(p).all()) for p in g.module.parameters()):
                bad = f"{specs[g.specs[0]].label()}: non-finite weights"
                break
    if bad is not None:
        lrs = sorted({f"{g.lr:g}" for g in groups})
        raise UntwineError(f"training diverged by step {step} ({bad}); nothing written past the last good checkpoint: "
                           f"lower the learning rate (--lr, now {', '.join(lrs)})")
