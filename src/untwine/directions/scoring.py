"""Scoring directions against ground truth: the effect matrix and its scores.

For each direction ``d`` (a unit vector), latents ``z`` are drawn from the generator's
prior (:func:`untwine.directions.base.latent_prior`), each is moved along ``d`` over
``t`` in ``linspace(-r, r, steps)`` with ``r = range_scale * spread`` (``spread``: the root
mean variance of a prior coordinate, so ``r = 2`` for a standard Gaussian), and the
oracle (:mod:`untwine.directions.oracle`) reads the factors of every decoded image as
numbers in [0, 1].  The **effect** of direction ``j`` on factor ``k`` is the standard
deviation of factor ``k`` along the traversal, averaged over the seeds: the effect
matrix ``E`` is ``[directions x factors]``.  Its scores:

* ``disentanglement`` (DCI-style, Eastwood & Williams 2018, with ``E`` as the importance
  matrix): per direction ``1 - H(p_j) / log K`` with ``p_j`` its row normalised over the
  ``K`` factors, averaged with weights proportional to the row sums: 1 when every
  direction changes one factor only.
* ``completeness``: per factor ``1 - H(q_k) / log J`` with ``q_k`` its column normalised over
  the ``J`` directions, weighted by the column sums: 1 when every factor is changed by
  one direction only (0 by convention for a single direction).
* ``gap`` (MIG-style, Chen et al. 2018): per factor the difference between the largest and
  second-largest effect on it, divided by the largest; averaged over factors.
* ``alignment``: the one-to-one matching of directions to factors that maximises the
  matched effects (Hungarian algorithm); the fraction of the matched directions' total
  effect that falls on their matched factor.  ``matches`` names each direction's factor.
* ``mean_effect``: the mean row sum of ``E``, how much the directions change the factors
  at all (a direction that changes nothing scores 0 here and is ignored by the others).

Factors with a single value carry no information and are left out.

Effects below :data:`NOISE_EFFECT` (1e-4 of a factor's range: floating-point noise, or a
change no image shows) count as 0.  When no effect is above it (the
directions change nothing the oracle can see, e.g. a traversal range of 0) the four
ratios are undefined: ``None``, listed under ``"_undefined"``, with a ``warning:`` line.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import math
import warnings

from untwine.errors import UntwineError, UntwineWarning
from untwine.files import UNDEFINED_KEY

DEFAULT_SEEDS = 64
DEFAULT_STEPS = 9
DEFAULT_RANGE = 2.0
#: effects below this (factor values are in [0, 1]) are floating-point noise or invisible changes
NOISE_EFFECT = 1e-4
#: the scores that are ratios of effects (undefined when every effect is noise)
RATIOS = ("disentanglement", "completeness", "gap", "alignment")


def check_scoring(num_seeds, steps, range_scale) -> None:
    """One error line unless ``num_seeds >= 1``, ``steps >= 2`` (integers) and ``range_scale`` is finite and > 0."""
    for name, v, lo in (("--seeds", num_seeds, 1), ("--steps", steps, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise UntwineError(f"{name} must be an integer >= {lo}, got {v!r}")
    try:
        r = float(range_scale)
    except (TypeError, ValueError):
        raise UntwineError(f"--range must be a number > 0, got {range_scale!r}") from None
    if not math.isfinite(r) or r <= 0:
        raise UntwineError(f"--range must be a finite number > 0 (the traversal's half-width in prior spreads), "
                           f"got {range_scale!r}")


@torch.no_grad()
def traverse_latents(gen, directions, *, num_seeds: int = DEFAULT_SEEDS, steps: int = DEFAULT_STEPS,
                     range_scale: float = DEFAULT_RANGE, z=None) -> tuple[np.ndarray, np.ndarray]:
    """``(latents [J, S, T, D], t [T])``: ``S`` seeds moved along each of ``J`` directions."""
    dirs = torch.as_tensor(np.asarray(directions, dtype=np.float32))
    if z is None:
        z = gen.sample(num_seeds)
    r = range_scale * gen.spread
    t = torch.linspace(-r, r, steps)
    lat = z[None, :, None, :] + t[None, None, :, None] * dirs[:, None, None, :]
    return lat.numpy(), t.numpy()


@torch.no_grad()
def effect_matrix(gen, directions, oracle, *, num_seeds: int = DEFAULT_SEEDS, steps: int = DEFAULT_STEPS,
                  range_scale: float = DEFAULT_RANGE, batch_size: int = 256) -> np.ndarray:
    """The effect matrix ``[J, K]`` of ``directions`` on the oracle's factors (module docstring)."""
    check_scoring(num_seeds, steps, range_scale)
    lat, _ = traverse_latents(gen, directions, num_seeds=num_seeds, steps=steps, range_scale=range_scale)
    j, s, t, d = lat.shape
    flat = lat.reshape(-1, d)
    values = []
    for i in range(0, len(flat), batch_size):
        images = gen.decode(torch.from_numpy(flat[i:i + batch_size])).float().cpu()
        values.append(oracle.values(images))
    v = np.concatenate(values).reshape(j, s, t, -1)
    return v.std(axis=2).mean(axis=1)


def _normalised_entropy(p: np.ndarray, axis: int, base: int) -> np.ndarray:
    if base < 2:
        return np.ones(p.shape[1 - axis])
    tot = p.sum(axis=axis, keepdims=True)
    q = np.divide(p, tot, out=np.zeros_like(p), where=tot > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=axis)
    return h / np.log(base)


def score_effects(effects, factor_names=None) -> dict:
    """Scores of an effect matrix ``[J, K]`` (see the module docstring), as a JSON-ready dict."""
    e = np.asarray(effects, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise UntwineError(f"effect matrix must be [directions, factors], got shape {e.shape}")
    if not np.isfinite(e).all():
        raise UntwineError("effect matrix holds NaN or infinite values (the generator's images are not finite)")
    e = np.where(e < NOISE_EFFECT, 0.0, e)
    j, k = e.shape
    names = list(factor_names) if factor_names is not None else [f"factor {i}" for i in range(k)]
    total = e.sum()
    rows, cols = e.sum(axis=1), e.sum(axis=0)
    if total <= 0:
        warnings.warn(f"no direction changes any factor by more than {NOISE_EFFECT:g} of its range: "
                      "disentanglement, completeness, gap and alignment are undefined", UntwineWarning, stacklevel=2)
        dis = comp = gap = align = float("nan")
        matches = [None] * j
    else:
        dis = float(((1 - _normalised_entropy(e, 1, k)) * rows / total).sum())
        comp = float(((1 - _normalised_entropy(e, 0, j)) * cols / total).sum()) if j > 1 else 0.0
        top = np.sort(e, axis=0)[::-1]
        second = top[1] if j > 1 else np.zeros(k)
        gap = float(np.mean(np.divide(top[0] - second, top[0], out=np.zeros(k), where=top[0] > 0)))
        r, c = linear_sum_assignment(-e)
        matched_rows = rows[r].sum()
        align = float(e[r, c].sum() / matched_rows) if matched_rows > 0 else 0.0
        matches = [None] * j
        for a, b in zip(r, c):
            matches[a] = names[b]
    out = {
        "disentanglement": dis,
        "completeness": comp,
        "gap": gap,
        "alignment": align,
        "mean_effect": float(rows.mean()),
        "matches": matches,
    }
    undefined = [name for name in RATIOS if not math.isfinite(out[name])]
    if undefined:
        out[UNDEFINED_KEY] = undefined
    return out
