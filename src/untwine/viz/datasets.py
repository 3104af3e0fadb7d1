"""A picture of a ground-truth dataset: one row per factor (``untwine datasets show``).

Row ``k`` varies factor ``k`` over ``cols`` evenly spaced values while the other
factors stay at one base combination drawn with ``numpy.random.default_rng(seed)``;
each row is labelled with the factor's name and size.  Images become a grid of
pictures (PNG), series ``[C, T]`` one panel of overlaid curves per factor (blue to red
as the factor's value grows), sentences (``modality == "text"``) lines of text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine._checks import check_seed
from untwine.errors import UntwineError


def factor_grid(dataset, cols: int, seed: int) -> np.ndarray:
    """Factor rows for the grid: ``[K, cols, K]``, row ``k`` sweeping factor ``k``."""
    rng = np.random.default_rng(seed)
    base = dataset.sample_factors(1, rng)[0]
    k = dataset.num_factors
    grid = np.repeat(np.repeat(base[None, None], k, 0), cols, 1)
    for j, size in enumerate(dataset.factor_sizes):
        grid[j, :, j] = np.round(np.linspace(0, size - 1, cols)).astype(np.int64)
    return grid


def dataset_grid(dataset, *, cols: int = 10, zoom: int = 2, seed: int = 0):
    """The labelled grid as a PIL image (see the module docstring)."""
    from PIL import Image, ImageDraw

    if cols < 1:
        raise UntwineError(f"--cols must be at least 1, got {cols}")
    if zoom < 1:
        raise UntwineError(f"--zoom must be at least 1, got {zoom}")
    grid = factor_grid(dataset, cols, seed)
    k = dataset.num_factors
    x = np.asarray(dataset.observations(grid.reshape(-1, k)))  # [k*cols, C, H, W]
    if x.ndim != 4:
        raise UntwineError(f"{dataset.name}: observations of shape {tuple(x.shape[1:])} are not images")
    c, h, w = x.shape[1:]
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    elif c != 3:
        x = np.repeat(x[:, :1], 3, axis=1)
    label_w, pad = 110, 2
    out = Image.new("RGB", (label_w + cols * (w * zoom + pad), k * (h * zoom + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for r in range(k):
        y0 = r * (h * zoom + pad)
        draw.text((4, y0 + h * zoom // 2 - 6), f"{dataset.factor_names[r]} ({dataset.factor_sizes[r]})", fill=(0, 0, 0))
        for col in range(cols):
            img = (np.clip(x[r * cols + col].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
            tile = Image.fromarray(img).resize((w * zoom, h * zoom), Image.NEAREST)
            out.paste(tile, (label_w + col * (w * zoom + pad), y0))
    return out


def series_grid(dataset, *, cols: int = 10, seed: int = 0, channel: int = 0):
    """One panel per factor, the series of its swept values overlaid (a matplotlib Figure)."""
    import matplotlib

    from untwine.viz._images import new_figure

    if cols < 1:
        raise UntwineError(f"--cols must be at least 1, got {cols}")
    grid = factor_grid(dataset, cols, seed)
    k = dataset.num_factors
    x = np.asarray(dataset.observations(grid.reshape(-1, k))).reshape(k, cols, *dataset.observation_shape)
    ncols = min(3, k)
    nrows = (k + ncols - 1) // ncols
    fig = new_figure((3.0 * ncols, 2.0 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    cmap = matplotlib.colormaps["coolwarm"]
    t = np.arange(x.shape[-1])
    for j in range(nrows * ncols):
        ax = axes[j // ncols][j % ncols]
        if j >= k:
            ax.axis("off")
            continue
        for c in range(cols):
            ax.plot(t, x[j, c, channel], color=cmap(c / max(cols - 1, 1)), lw=1.0)
        ax.set_title(f"{dataset.factor_names[j]} ({dataset.factor_sizes[j]})", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.supxlabel("time step; colour: the factor's value, blue lowest to red highest", fontsize=8)
    fig.tight_layout()
    return fig


def show_dataset(dataset, *, out=None, cols: int = 10, zoom: int = 2, seed: int = 0) -> tuple[Path | None, list[str]]:
    """Draw ``dataset`` (a name, a path or a dataset) one row per factor (see the module docstring).

    Returns ``(path, lines)``: images and series are written to ``out`` (default
    ``NAME_grid.png``) and ``lines`` is empty; text datasets give their example ``lines``,
    written to ``out`` only when it is given.
    """
    import io

    from untwine import data
    from untwine.files import atomic_write_bytes, atomic_write_text
    from untwine.viz.series import is_series

    check_seed(seed)
    ds = data.load(dataset)
    if getattr(ds, "modality", "image") == "text":
        from untwine.data.concepts import example_lines

        lines = example_lines(ds, cols=cols, seed=seed)
        if out is not None:
            atomic_write_text(out, "\n".join(lines) + "\n")
        return (Path(out) if out is not None else None), lines
    if not ds.is_full_grid:
        raise UntwineError(f"{ds.name}: not a full factor grid, so rows cannot vary one factor at a time")
    path = Path(out) if out is not None else Path(f"{ds.name.replace(':', '_')}_grid.png")
    if is_series(ds.observation_shape):
        from untwine.viz._images import save_figure

        save_figure(series_grid(ds, cols=cols, seed=seed), path)
        return path, []
    image = dataset_grid(ds, cols=cols, zoom=zoom, seed=seed)
    buf = io.BytesIO()
    try:
        image.save(buf, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    except (KeyError, ValueError, OSError) as exc:
        raise UntwineError(f"cannot write {path}: {exc}") from None
    atomic_write_bytes(path, buf.getvalue())
    return path, []
