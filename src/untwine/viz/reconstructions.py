"""Reconstructions: inputs in the top row, the model's reconstructions below.

The reconstruction of ``x`` is ``decode(encode(x))``: the decoder applied to the mean
representation (the quantised code for QLAE), as disentanglement_lib's
``visualize_model`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.viz._images import new_figure, png_bytes, save_figure, tile, to_uint8
from untwine.viz.traversal import decode_codes, encode_batches


def reconstruct(model, x) -> np.ndarray:
    """Float reconstructions ``[n, C, H, W]`` in [0, 1] of observations ``x`` ``[n, C, H, W]``."""
    means, _ = encode_batches(model, x)
    return decode_codes(model, means)


def reconstruction_image(model, x, *, pad: int = 2) -> np.ndarray:
    """uint8 grid ``[H', W', 3]``: the inputs ``x`` (row 1) over their reconstructions (row 2)."""
    if len(x) == 0:
        raise UntwineError("no observations to reconstruct")
    rec = reconstruct(model, x)
    grid = np.stack([to_uint8(x), to_uint8(rec)])  # [2, n, H, W, 3]
    return tile(grid, pad=pad)


def reconstruction_error(model, x) -> float:
    """Mean squared error per pixel between ``x`` and its reconstruction."""
    xa = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return float(np.mean((reconstruct(model, x) - xa.astype(np.float64)) ** 2))


def reconstruction_figure(model, x, *, title: str | None = None):
    """A matplotlib Figure of :func:`reconstruction_image` with the rows labelled."""
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


def save_reconstructions(model, x, path) -> Path:
    """Write the reconstruction grid: ``.png`` as a plain image, other suffixes as a figure."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png_bytes(reconstruction_image(model, x)))
        except OSError as exc:
            raise UntwineError(f"{path}: cannot write image ({exc.strerror or exc})") from None
        return path
    return save_figure(reconstruction_figure(model, x), path)
