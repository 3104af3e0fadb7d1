"""Reconstructions: inputs in the top row, the model's reconstructions below.

The reconstruction of ``x`` is ``decode(encode(x))``: the decoder applied to the mean
representation (the quantised code for QLAE), as disentanglement_lib's
``visualize_model`` does.

Series ``x`` ``[n, C, T]`` (see :func:`untwine.viz.series.is_series`) are drawn as one
small panel per series, input and reconstruction overlaid
(:func:`series_reconstruction_figure`); :func:`reconstruction_figure` and
:func:`save_reconstructions` pick that view from the shape of ``x``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.viz._images import new_figure, png_bytes, save_figure, tile, to_uint8
from untwine.viz.series import is_series
from untwine.models.encoder import decode_codes
from untwine.viz.traversal import encode_batches


def _is_series_batch(x) -> bool:
    return is_series(tuple(x.shape)[1:])


def reconstruct(model, x) -> np.ndarray:
    """Float reconstructions in [0, 1] of observations ``x`` (``[n, C, H, W]`` images or ``[n, C, T]`` series),
    of the same shape."""
    means, _ = encode_batches(model, x)
    return decode_codes(model, means)


def reconstruction_image(model, x, *, pad: int = 2) -> np.ndarray:
    """uint8 grid ``[H', W', 3]``: the inputs ``x`` (row 1) over their reconstructions (row 2)."""
    if len(x) == 0:
        raise UntwineError("no observations to reconstruct")
    if _is_series_batch(x):
        raise UntwineError("reconstruction_image draws images; series [n, C, T] use series_reconstruction_figure")
    rec = reconstruct(model, x)
    grid = np.stack([to_uint8(x), to_uint8(rec)])  # [2, n, H, W, 3]
    return tile(grid, pad=pad)


def reconstruction_error(model, x) -> float:
    """Mean squared error per value (pixel, or time step of a series) between ``x`` and its reconstruction."""
    xa = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return float(np.mean((reconstruct(model, x) - xa.astype(np.float64)) ** 2))


def reconstruction_figure(model, x, *, title: str | None = None):
    """A matplotlib Figure of :func:`reconstruction_image` with the rows labelled
    (:func:`series_reconstruction_figure` for series ``[n, C, T]``)."""
    if _is_series_batch(x):
        return series_reconstruction_figure(model, x, title=title)
    img = reconstruction_image(model, x)
    h, w = img.shape[:2]
    fig = new_figure((max(3.0, w / 60 + 1.2), max(1.5, h / 60 + 0.4)))
    ax = fig.add_axes([0.12, 0.02, 0.86, 0.9])
    ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([h / 4, 3 * h / 4])
    ax.set_yticklabels(["input", "recon."], fontsize=8)
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def series_reconstruction_figure(model, x, *, title: str | None = None, ncols: int = 4):
    """Input-vs-reconstruction curves of series ``x`` ``[n, C, T]``: one panel per series
    (``ncols`` per row), every channel's input solid and its reconstruction dashed."""
    if len(x) == 0:
        raise UntwineError("no observations to reconstruct")
    if not _is_series_batch(x):
        raise UntwineError(f"series_reconstruction_figure expects series [n, C, T], got shape {tuple(x.shape)}")
    xa = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    xa = xa.astype(np.float64)
    rec = reconstruct(model, x)
    n, c, t_len = xa.shape
    ncols = max(1, min(int(ncols), n))
    nrows = (n + ncols - 1) // ncols
    fig = new_figure((2.6 * ncols, 1.7 * nrows + (0.4 if title else 0.0) + 0.3))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    t = np.arange(t_len)
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        if k >= n:
            ax.axis("off")
            continue
        for ch in range(c):
            inp_color, rec_color = ("0.25", "tab:red") if c == 1 else (f"C{ch}", f"C{ch}")
            ax.plot(t, xa[k, ch], color=inp_color, lw=1.0, label="input" if ch == 0 else None)
            ax.plot(t, rec[k, ch], color=rec_color, lw=1.2, ls="--", label="reconstruction" if ch == 0 else None)
        err = float(np.mean((rec[k] - xa[k]) ** 2))
        ax.set_title(f"#{k}  MSE {err:.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=7, loc="upper right", frameon=False)
    fig.supxlabel("time step" + ("; colour: channel" if c > 1 else ""), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_reconstructions(model, x, path) -> Path:
    """Write the reconstructions: images as a plain grid for ``.png``, as a figure for other
    suffixes; series always as :func:`series_reconstruction_figure`."""
    path = Path(path)
    if path.suffix.lower() == ".png" and not _is_series_batch(x):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(reconstruction_image(model, x)))
        except OSError as exc:
            raise UntwineError(f"{path}: cannot write image ({exc.strerror or exc})") from None
        return path
    return save_figure(reconstruction_figure(model, x), path)
