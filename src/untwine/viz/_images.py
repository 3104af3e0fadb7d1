"""Small helpers shared by the pictures: tensors to uint8 images, tiling, PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from untwine.errors import UntwineError


def to_uint8(images) -> np.ndarray:
    """Images ``[..., C, H, W]`` in [0, 1] (tensor or array) -> uint8 ``[..., H, W, 3]``.

    One channel is repeated to RGB; values are clipped to [0, 1] first.
    """
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim < 3:
        raise UntwineError(f"images: expected [..., C, H, W], got shape {arr.shape}")
    arr = np.moveaxis(arr, -3, -1)
    c = arr.shape[-1]
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c != 3:
        raise UntwineError(f"images: expected 1 or 3 channels, got {c}")
    return np.round(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(images: np.ndarray, *, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """uint8 ``[R, C, H, W, 3]`` -> one uint8 ``[R*(H+pad)+pad, C*(W+pad)+pad, 3]`` image."""
    r, c, h, w, ch = images.shape
    out = np.full((r * (h + pad) + pad, c * (w + pad) + pad, ch), pad_value, dtype=np.uint8)
    for i in range(r):
        for j in range(c):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = images[i, j]
    return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a ``[H, W, 3]`` image by an integer factor."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 ``[H, W, 3]`` image."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def figure_png_bytes(fig, dpi: int = 100) -> bytes:
    """PNG encoding of a matplotlib figure (rendered with the Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write a figure as PNG (or any format matplotlib knows from the suffix)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(fig)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    except OSError as exc:
        raise UntwineError(f"{path}: cannot write figure ({exc.strerror or exc})") from None
    return path


def new_figure(figsize):
    """A matplotlib Figure with an Agg canvas, without touching pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig
