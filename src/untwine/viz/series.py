"""Latent traversals of time-series models: small multiples of decoded curves.

The series counterpart of :mod:`untwine.viz.traversal`.  Starting from the code
(posterior mean) of a seed series ``x_seed`` ``[C, T]``, one latent at a time is set to
``steps`` evenly spaced values of ``value_range`` (default ``[-2, 2]``, the prior's
range) with the others fixed, and every code is decoded.  :func:`series_traversal`
returns the curves; :func:`plot_series_traversal` draws one panel per latent (rows,
``ncols`` panels per row) with the curves of that latent's sweep overlaid, coloured
from low (blue) to high (red) values, the seed series dashed in grey.  Multichannel
series draw channel ``channel`` (default 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.viz._images import new_figure, save_figure


def _device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def series_traversal(model, x_seed, *, latents=None, steps: int = 7, value_range=(-2.0, 2.0)) -> dict[str, np.ndarray]:
    """Decoded curves ``curves [L, S, C, T]``, swept ``values [S]``, ``latents [L]`` and the ``seed [C, T]``."""
    x = torch.as_tensor(np.asarray(x_seed), dtype=torch.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise UntwineError(f"x_seed must be one series [C, T] (or [T]), got shape {tuple(x.shape)}")
    if int(steps) < 2:
        raise UntwineError(f"steps must be at least 2, got {steps}")
    lo, hi = (float(v) for v in value_range)
    if not lo < hi:
        raise UntwineError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    dev = _device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z0 = model.encode(x[None].to(dev))[0]
            d = z0.shape[0]
            chosen = list(range(d)) if latents is None else [int(i) for i in latents]
            if not chosen or any(not 0 <= i < d for i in chosen):
                raise UntwineError(f"latents must be indices in [0, {d}), got {latents!r}")
            values = torch.linspace(lo, hi, int(steps), device=dev)
            z = z0.repeat(len(chosen), int(steps), 1)  # [L, S, D]
            for r, i in enumerate(chosen):
                z[r, :, i] = values
            curves = model.decode(z.reshape(-1, d)).reshape(len(chosen), int(steps), *x.shape)
    finally:
        model.train(was_training)
    return {
        "curves": curves.cpu().numpy().astype(np.float64),
        "values": values.cpu().numpy().astype(np.float64),
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
):
    """Small multiples of a series traversal (see module docstring); returns the matplotlib Figure
    (written to ``path`` as PNG/SVG/... when given)."""
    tr = series_traversal(model, x_seed, latents=latents, steps=steps, value_range=value_range)
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
        for s in range(len(values)):
            ax.plot(t, curves[k, s, channel], color=cmap(s / max(len(values) - 1, 1)), lw=1.1)
        ax.set_title(labels[k] if labels is not None else f"z{int(chosen[k])}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.02, 1.02)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, Path(path))
    return fig
