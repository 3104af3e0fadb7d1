"""``untwine datasets``: list the ground-truth datasets, or draw a grid of samples.

* ``untwine datasets`` (or ``untwine datasets list``): every built-in dataset with its
  factors, their sizes, the number of images and the observation shape.
* ``untwine datasets show NAME_OR_PATH [--out grid.png] [--seed S] [--cols N]``: a PNG in
  which row ``k`` varies factor ``k`` over ``N`` evenly spaced values while the other
  factors stay at a random base combination drawn with ``--seed``; for a text dataset
  (``concepts``) the same rows are printed as sentences (and written to ``--out`` as text).
"""

from __future__ import annotations

import argparse

from untwine.commands import help_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets",
        help="list ground-truth datasets or draw a grid of samples",
        description=help_text(__doc__),
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
        shape = "x".join(str(s) for s in ds.observation_shape) or "sentence"
        values = "text" if getattr(ds, "modality", "image") == "text" else ("binary" if ds.binary else "[0, 1]")
        table.add_row(name, factors, f"{ds.num_samples:,}", shape, values)
    console = Console()
    console.print(table)
    console.print(
        "Files: dSprites .npz, 3dshapes .h5 (needs h5py), MPI3D .npz, or a generic .npz with "
        "'images' [N,H,W(,C)] and 'factors' [N,K]; labelled series: a .ts file, NAME_TRAIN.csv/.tsv "
        "(UCR layout), an .npz with X_train/y_train, or a UCR/UEA name aeon ships; pass the path "
        "(or the name) instead of a built-in name."
    )
    return 0


def _show(args) -> int:
    from untwine.viz.datasets import show_dataset

    path, lines = show_dataset(args.name, out=args.out, cols=args.cols, zoom=args.zoom, seed=args.seed)
    if lines:
        print("\n".join(lines))
    if path is not None:
        print(f"wrote {path} (one row per factor, {args.cols} values each, base seed {args.seed})")
    return 0
