"""``untwine datasets``: list the ground-truth datasets, or draw a grid of samples.

* ``untwine datasets`` (or ``untwine datasets list``): every built-in dataset with its
  factors, their sizes, the number of images and the observation shape.
* ``untwine datasets show NAME_OR_PATH [--out grid.png] [--seed S] [--cols N]``: a PNG in
  which row ``k`` varies factor ``k`` over ``N`` evenly spaced values while the other
  factors stay at a random base combination drawn with ``--seed``.
"""

from __future__ import annotations

import argparse

import numpy as np

from untwine.errors import UntwineError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list ground-truth datasets or draw a grid of samples",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="datasets_action", metavar="ACTION")
    sub.add_parser("list", help="list the built-in datasets (the default)")
    show = sub.add_parser("show", help="write a grid of samples, one row per factor")
    show.add_argument("name", help="dataset name (see `untwine datasets`) or path to a dataset file")
    show.add_argument("--out", default=None, help="output PNG (default: <name>_grid.png)")
    show.add_argument("--seed", type=int, default=0, help="seed of the base factor combination (default 0)")
    show.add_argument("--cols", type=int, default=10, help="values per factor (columns, default 10)")
    show.add_argument("--zoom", type=int, default=2, help="pixel zoom of each image (default 2)")
    p.set_defaults(func=run)


def run(args) -> int:
    if getattr(args, "datasets_action", None) == "show":
        return _show(args)
    return _list()


def _list() -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.data import DATASETS

    table = Table(title="Built-in ground-truth datasets (rendered on the fly; files load by path)")
    table.add_column("name", style="bold")
    table.add_column("factors (values)")
    table.add_column("images", justify="right")
    table.add_column("observation")
    table.add_column("pixels")
    for name, cls in DATASETS.items():
        ds = cls()
        factors = ", ".join(f"{n} ({s})" for n, s in zip(ds.factor_names, ds.factor_sizes))
        shape = "x".join(str(s) for s in ds.observation_shape)
        table.add_row(name, factors, f"{ds.num_samples:,}", shape, "binary" if ds.binary else "[0, 1]")
    console = Console()
    console.print(table)
    console.print(
        "Files: dSprites .npz, 3dshapes .h5 (needs h5py), MPI3D .npz, or a generic .npz with "
        "'images' [N,H,W(,C)] and 'factors' [N,K]; pass the path instead of a name."
    )
    return 0


def factor_grid(dataset, cols: int, seed: int):
    """Factor rows for a traversal grid: ``[K, m, K]`` rows and the number of columns ``m``."""
    rng = np.random.default_rng(seed)
    base = dataset.sample_factors(1, rng)[0]
    k = dataset.num_factors
    grid = np.repeat(np.repeat(base[None, None], k, 0), cols, 1)
    for j, size in enumerate(dataset.factor_sizes):
        grid[j, :, j] = np.round(np.linspace(0, size - 1, cols)).astype(np.int64)
    return grid


def _show(args) -> int:
    from PIL import Image, ImageDraw

    from untwine.data import load

    if args.cols < 1:
        raise UntwineError(f"--cols must be at least 1, got {args.cols}")
    if args.zoom < 1:
        raise UntwineError(f"--zoom must be at least 1, got {args.zoom}")
    ds = load(args.name)
    if not ds.is_full_grid:
        raise UntwineError(f"{ds.name}: not a full factor grid, so rows cannot vary one factor at a time")
    cols = args.cols
    grid = factor_grid(ds, cols, args.seed)
    k = ds.num_factors
    x = ds.observations(grid.reshape(-1, k)).numpy()  # [k*cols, C, H, W]
    c, h, w = x.shape[1:]
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    elif c != 3:
        x = np.repeat(x[:, :1], 3, axis=1)
    z = args.zoom
    label_w = 110
    pad = 2
    out = Image.new("RGB", (label_w + cols * (w * z + pad), k * (h * z + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for r in range(k):
        y0 = r * (h * z + pad)
        draw.text((4, y0 + h * z // 2 - 6), f"{ds.factor_names[r]} ({ds.factor_sizes[r]})", fill=(0, 0, 0))
        for col in range(cols):
            img = (np.clip(x[r * cols + col].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
            tile = Image.fromarray(img).resize((w * z, h * z), Image.NEAREST)
            out.paste(tile, (label_w + col * (w * z + pad), y0))
    path = args.out or f"{ds.name.replace(':', '_')}_grid.png"
    try:
        out.save(path)
    except (OSError, ValueError) as exc:
        raise UntwineError(f"cannot write {path}: {exc}") from None
    print(f"wrote {path} ({k} factors x {cols} values, base seed {args.seed})")
    return 0
