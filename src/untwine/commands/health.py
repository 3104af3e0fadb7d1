"""``untwine health``: geometry of a set of activations (anisotropy, rank, hubness, ...).

    untwine health ACTS [--json OUT] [--max-rows N] [--seed S] [--hubness-k K] [--lid-k K] [--key K]

``ACTS`` is a layer directory written by ``untwine lm activations``, a ``.safetensors``
file, or a ``.npy`` / ``.npz`` / ``.csv`` / ``.tsv`` array ``[N, D]``.  Prints one line per
measure of :mod:`untwine.metrics.health` and the rows it used; ``--json OUT`` writes them
as one flat JSON object.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from untwine.metrics.health import HUBNESS_K, LID_K, MAX_PAIR_ROWS

    p = subparsers.add_parser(
        "health",
        help="representation health of activations: anisotropy, isotropy, effective rank, hubness, intrinsic dimension, uniformity",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("acts", metavar="ACTS", help="activations: layer directory, .safetensors, .npy, .npz, .csv or .tsv [N, D]")
    p.add_argument("--json", metavar="OUT", help="write the measures to OUT as one flat JSON object")
    p.add_argument("--max-rows", type=int, default=MAX_PAIR_ROWS, metavar="N",
                   help=f"rows used by the neighbour and pair measures; more are subsampled (default {MAX_PAIR_ROWS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample (default 0)")
    p.add_argument("--hubness-k", type=int, default=HUBNESS_K, metavar="K", help=f"neighbours for hubness (default {HUBNESS_K})")
    p.add_argument("--lid-k", type=int, default=LID_K, metavar="K", help=f"neighbours for the LID estimate (default {LID_K})")
    p.add_argument("--key", metavar="K", help="array or tensor name inside .npz / .safetensors files")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import time

    from untwine.lm.shards import read_activations
    from untwine.metrics.health import MEASURES, health_report

    t0 = time.perf_counter()
    x = read_activations(args.acts, args.key)
    report = health_report(x, hubness_k=args.hubness_k, lid_k=args.lid_k, max_rows=args.max_rows, seed=args.seed)
    n, used = int(report["rows"]), int(report["rows_sampled"])
    print(f"activations: {args.acts} ({n} rows x {int(report['dims'])} dims)")
    sub = "all rows" if used == n else f"a subsample of {used} rows (seed {args.seed})"
    print(f"hubness, LID, TwoNN and uniformity use {sub}")
    for name in MEASURES:
        print(f"  {name:<20} {report[name]:.4f}")
    print(f"total {time.perf_counter() - t0:.2f}s")
    if args.json:
        from untwine.files import write_json

        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0
