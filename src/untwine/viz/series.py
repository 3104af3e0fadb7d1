"""Latent traversals of time-series models: small multiples of decoded curves.

The series counterpart of :mod:`untwine.viz.traversal`.  Starting from the code
(posterior mean) of a seed series ``x_seed`` ``[C, T]``, one latent at a time is set to
``steps`` evenly spaced values of ``value_range`` (default ``[-2, 2]``, the prior's
range) with the others fixed, and every code is decoded.  :func:`series_traversal`
returns the curves; :func:`plot_series_traversal` draws one panel per latent (rows,
``ncols`` panels per row) with the curves of that latent's sweep overlaid, coloured
from low (blue) to high (red) values, the seed series dashed in grey.  Multichannel
series draw channel ``channel`` (default 0).  ``values`` ``[L, S]`` instead sweeps each
latent over its own values (e.g. from :func:`untwine.viz.traversal.traversal_plan`, as
``untwine traverse`` and ``untwine report`` do for runs on series data).

:func:`is_series` is the one test the views use to tell series ``[C, T]`` from images
``[C, H, W]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.models.encoder import ModelEncoder, decode_codes
from untwine.viz._images import new_figure, save_figure


def is_series(observation_shape) -> bool:
    """True when one observation of shape ``observation_shape`` is a series ``[C, T]``
    (False for an image ``[C, H, W]``)."""
    return len(tuple(observation_shape)) == 2


def series_traversal(model, x_seed, *, latents=None, steps: int = 7, value_range=(-2.0, 2.0),
                     values=None) -> dict[str, np.ndarray]:
    """Decoded curves ``curves [L, S, C, T]``, swept ``values`` (``[S]``, or ``[L, S]`` when given per
    latent), ``latents [L]`` and the ``seed [C, T]``.  ``values [L, S]`` replaces ``steps`` and
    ``value_range``: row ``r`` is swept by latent ``latents[r]`` (default: all latents)."""
    x = torch.as_tensor(np.asarray(x_seed), dtype=torch.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise UntwineError(f"x_seed must be one series [C, T] (or [T]), got shape {tuple(x.shape)}")
    if values is None:
        if int(steps) < 2:
            raise UntwineError(f"steps must be at least 2, got {steps}")
        lo, hi = (float(v) for v in value_range)
        if not lo < hi:
            raise UntwineError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    else:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] < 1 or not np.all(np.isfinite(values)):
            raise UntwineError(f"values must be a finite [latents, steps] array, got shape {values.shape}")
    z0 = ModelEncoder(model)(x[None])[0]  # the seed's (mean) code [D]
    d = z0.shape[0]
    chosen = list(range(d)) if latents is None else [int(i) for i in latents]
    if not chosen or any(not 0 <= i < d for i in chosen):
        raise UntwineError(f"latents must be indices in [0, {d}), got {latents!r}")
    if values is None:
        sweep = np.tile(np.linspace(lo, hi, int(steps)), (len(chosen), 1))  # [L, S]
    elif values.shape[0] != len(chosen):
        raise UntwineError(f"values has {values.shape[0]} rows for {len(chosen)} latents")
    else:
        sweep = values
    s = sweep.shape[1]
    z = np.repeat(z0[None, None, :], len(chosen), axis=0).repeat(s, axis=1)  # [L, S, D]
    for r, i in enumerate(chosen):
        z[r, :, i] = sweep[r]
    curves = decode_codes(model, z.reshape(-1, d)).reshape(len(chosen), s, *x.shape)
    return {
        "curves": curves.astype(np.float64),
        "values": sweep[0] if values is None else values,
        "latents": np.asarray(chosen),
        "seed": x.numpy().astype(np.float64),
    }


def plot_series_traversal(
    model,
    x_seed,
    *,
    latents=None,
    steps: int = 7,
    value_range=(-2.0, 2.0),
    channel: int = 0,
    ncols: int = 5,
    labels=None,
    path=None,
    title: str | None = None,
    values=None,
):
    """Small multiples of a series traversal (see module docstring); returns the matplotlib Figure
    (written to ``path`` as PNG/SVG/... when given).  ``values [L, S]``: per-latent sweeps
    (see :func:`series_traversal`)."""
    tr = series_traversal(model, x_seed, latents=latents, steps=steps, value_range=value_range, values=values)
    curves, values, chosen, seed = tr["curves"], tr["values"], tr["latents"], tr["seed"]
    if not 0 <= int(channel) < seed.shape[0]:
        raise UntwineError(f"channel must be in [0, {seed.shape[0]}), got {channel}")
    if labels is not None and len(labels) != len(chosen):
        raise UntwineError(f"labels: {len(labels)} given for {len(chosen)} latents")
    n = len(chosen)
    ncols = max(1, min(int(ncols), n))
    nrows = (n + ncols - 1) // ncols
    fig = new_figure((2.6 * ncols, 1.9 * nrows + (0.4 if title else 0.0)))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    import matplotlib

    cmap = matplotlib.colormaps["coolwarm"]
    t = np.arange(seed.shape[1])
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        if k >= n:
            ax.axis("off")
            continue
        ax.plot(t, seed[channel], color="0.55", lw=1.0, ls="--")
        n_steps = curves.shape[1]
        for s in range(n_steps):
            ax.plot(t, curves[k, s, channel], color=cmap(s / max(n_steps - 1, 1)), lw=1.1)
        ax.set_title(labels[k] if labels is not None else f"z{int(chosen[k])}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.02, 1.02)
    rows = values.reshape(-1, values.shape[-1])
    if np.allclose(rows, rows[:1]):
        sweep = f"blue {rows[0, 0]:.3g} to red {rows[0, -1]:.3g}"
    else:
        sweep = "blue lowest to red highest of each latent's values"
    fig.supxlabel(f"time step; colour: value of the traversed latent ({sweep}); dashed grey: seed", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, Path(path))
    return fig
