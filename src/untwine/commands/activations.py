"""``untwine activations``: activations of any model on any ground-truth dataset.

    untwine activations RUN_DIR --list-layers [--dataset NAME]
    untwine activations RUN_DIR [--dataset NAME] --layers L1,L2 [--rows N] [--pool mean|max|flatten|positions]
                        [--seed S] [--batch-size B] [--chunk N] [--device D] --out DIR

RUN_DIR is a run folder of ``untwine train`` (its latest checkpoint); ``--dataset``
defaults to the run's own (any dataset with the observation shape the model takes).
A layer is a module path as ``--list-layers`` prints it (with its output shape), or
``codes``: the model's code, equal bit for bit to the mean representation ``untwine
evaluate`` scores.  Convolutional maps are pooled per ``--pool``: ``mean`` / ``max``
over positions, ``flatten``, or ``positions`` (one row per input and spatial position;
the position of each row in ``DIR/positions.npy``).  The folder has the layout of
``untwine lm activations`` (``DIR/layer_L/`` shards + manifest, ``factors.npy``,
``rows.npy``, ``inputs.npy``: the dataset index of each input), so ``untwine sae
train/evaluate --factors DIR/factors.npy``, ``untwine health`` and ``untwine report``
read it.  Running the same command again resumes after the last complete shard.
"""

from __future__ import annotations

import argparse

from untwine.commands import help_text
from untwine.errors import UntwineError


def _layers(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "activations",
        help="activations of a trained model's layers on a ground-truth dataset (for SAEs and concept baselines)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="RUN_DIR", help="run folder made by `untwine train`")
    p.add_argument("--dataset", metavar="NAME", help="dataset name or path (default: the run's own)")
    p.add_argument("--list-layers", action="store_true", help="print every layer with its output shape and stop")
    p.add_argument("--layers", type=_layers, metavar="L1,L2", help="comma-separated layers (see --list-layers), e.g. codes")
    p.add_argument("--rows", type=int, default=5000, metavar="N", help="inputs drawn from the dataset (default 5000)")
    p.add_argument("--pool", choices=("mean", "max", "flatten", "positions"), default="mean",
                   help="pooling of convolutional maps (default mean)")
    p.add_argument("--out", metavar="DIR", help="output folder (resumed when it holds the same run)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn inputs (default 0)")
    p.add_argument("--batch-size", type=int, default=500, metavar="B",
                   help="inputs per forward pass (default 500, the evaluation's)")
    p.add_argument("--chunk", type=int, default=2000, metavar="N",
                   help="inputs per shard, a multiple of --batch-size: the unit of resuming (default 2000)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import sys

    from untwine._checks import check_seed
    from untwine.activations.models import list_layers, open_source, write_model_activations

    check_seed(args.seed)
    if not args.list_layers and (args.layers is None or args.out is None):
        raise UntwineError("give --layers L1,L2 and --out DIR (or --list-layers to see the layers)")
    src = open_source(args.source, args.dataset, device=args.device)
    if args.list_layers:
        rows = list_layers(src)
        width = max(len(k) for k, _, _ in rows)
        print(f"layers of {src.name} on {src.dataset.name} (output shape per input):")
        for name, shape, kind in rows:
            print(f"  {name:<{width}}  {'x'.join(map(str, shape)):<12}  {kind}")
        return 0
    s = write_model_activations(args.out, src, layers=args.layers, rows=args.rows, pool=args.pool, seed=args.seed,
                                batch_size=args.batch_size, chunk=args.chunk, progress=sys.stderr.isatty())
    if s["resumed_items"]:
        print(f"resumed after {s['resumed_items']} of {s['items']} inputs")
    print(f"{s['model']}: {s['items']} inputs of {s['dataset']} -> {s['rows']} rows ({s['pool']} pooling)")
    for layer in s["layers"]:
        print(f"  {args.out}/{s['layer_dirs'][layer]}  {s['dims'][layer]} columns")
    print(f"factors: {args.out}/factors.npy")
    print(f"total {s['seconds']:.1f}s")
    return 0
