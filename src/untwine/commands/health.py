"""``untwine health``: geometry of a set of activations (anisotropy, rank, hubness, ...).

    untwine health ACTS [--json OUT] [--max-rows N] [--seed S] [--hubness-k K] [--lid-k K] [--key K]
    untwine health RUN_DIR [--frequency] [--html PAGE] [--json OUT] ...

``ACTS`` is a layer directory written by ``untwine lm activations``, a directory of
shards, a ``.safetensors`` file, or a ``.npy`` / ``.npz`` / ``.csv`` / ``.tsv`` array
``[N, D]`` (read by :mod:`untwine.activations.reader`); a tensor or array inside a file is
named with ``--key K`` or as ``FILE:K``.  Prints one line per
measure of :mod:`untwine.metrics.health` and the rows it used; ``--json OUT`` writes them
as one flat JSON object.

``RUN_DIR`` (the ``--out`` of ``untwine lm activations``) scores every layer;
``--frequency`` adds the model's input token embeddings grouped by word frequency
(:mod:`untwine.lm.layer_health`), ``--html PAGE`` writes one figure per measure across
layers and frequency groups; ``--json OUT`` then holds one object per layer / group.
"""

from __future__ import annotations

import argparse

from untwine.commands import help_text


#: defaults of untwine.metrics.health (not imported here: ``untwine --help`` stays fast)
MAX_PAIR_ROWS, HUBNESS_K, LID_K = 4000, 10, 20


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "health",
        help="representation health of activations: anisotropy, isotropy, effective rank, hubness, intrinsic dimension, uniformity",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("acts", metavar="ACTS", help="activations: layer directory, .safetensors, .npy, .npz, .csv or .tsv [N, D]; or an lm activations directory")
    p.add_argument("--json", metavar="OUT", help="write the measures to OUT as JSON")
    p.add_argument("--max-rows", type=int, default=MAX_PAIR_ROWS, metavar="N",
                   help=f"rows used by the neighbour and pair measures; more are subsampled (default {MAX_PAIR_ROWS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample (default 0)")
    p.add_argument("--hubness-k", type=int, default=HUBNESS_K, metavar="K", help=f"neighbours for hubness (default {HUBNESS_K})")
    p.add_argument("--lid-k", type=int, default=LID_K, metavar="K", help=f"neighbours for the LID estimate (default {LID_K})")
    p.add_argument("--key", metavar="K", help="array or tensor name inside .npz / .safetensors files (same as ACTS given as FILE:K)")
    p.add_argument("--frequency", action="store_true", help="RUN_DIR only: also the input embeddings by word frequency")
    p.add_argument("--html", metavar="PAGE", help="RUN_DIR only: write the figures (one per measure) to PAGE")
    p.set_defaults(func=run)
    return p


def _print_table(title: str, res: dict) -> None:
    from untwine.metrics.health import MEASURES

    keys = list(res)
    print(f"{title:<20} " + " ".join(f"{k!s:>10}" for k in keys))
    for m in MEASURES:
        print(f"  {m:<18} " + " ".join(f"{res[k][m]:>10.4f}" for k in keys))


def run(args) -> int:
    import time

    from untwine.errors import UntwineError
    from untwine.files import write_json
    from untwine.activations.layout import ActivationFolder
    from untwine.metrics.health import MEASURES, health_report

    from pathlib import Path

    from untwine._checks import check_seed
    from untwine.files import check_output_file

    t0 = time.perf_counter()
    check_seed(args.seed)
    for name, value, low in (("--max-rows", args.max_rows, 2), ("--hubness-k", args.hubness_k, 1),
                             ("--lid-k", args.lid_k, 1)):
        if value < low:
            raise UntwineError(f"{name} must be at least {low}, got {value}")
    for name, path in (("--json", args.json), ("--html", args.html)):
        if path is not None:
            check_output_file(path, name)
    if args.key is not None and Path(args.acts).is_dir():
        raise UntwineError("--key names an array inside a .npz or .safetensors file; ACTS is a folder")
    kw = {"hubness_k": args.hubness_k, "lid_k": args.lid_k, "max_rows": args.max_rows, "seed": args.seed}
    if ActivationFolder.is_folder(args.acts):
        from untwine.lm.layer_health import health_report_html, run_health

        layers, groups = run_health(args.acts, frequency=args.frequency, **kw)
        print(f"activations: {args.acts} ({', '.join(f'layer {k}' for k in layers)}); "
              f"pair measures on at most {args.max_rows} rows per set (seed {args.seed})")
        _print_table("layer", layers)
        if groups:
            _print_table("embeddings", groups)
        data = {f"layer_{k}": v for k, v in layers.items()}
        data.update({f"embeddings {g}": v for g, v in (groups or {}).items()})
        if args.html:
            from untwine.files import atomic_write_text

            atomic_write_text(args.html, health_report_html(layers, groups, title=f"Representation health: {args.acts}"))
            print(f"wrote {args.html}")
    else:
        if args.frequency or args.html:
            raise UntwineError("--frequency and --html need an `untwine lm activations` directory (with activations.json)")
        from untwine.activations.reader import read_activations

        x = read_activations(args.acts, args.key)
        data = health_report(x, **kw)
        n, used = int(data["rows"]), int(data["rows_sampled"])
        print(f"activations: {args.acts} ({n} rows x {int(data['dims'])} dims)")
        sub = "all rows" if used == n else f"a subsample of {used} rows (seed {args.seed})"
        print(f"hubness, LID, TwoNN and uniformity use {sub}")
        for name in MEASURES:
            print(f"  {name:<20} {data[name]:.4f}")
    print(f"total {time.perf_counter() - t0:.2f}s")
    if args.json:
        write_json(args.json, data)
        print(f"wrote {args.json}")
    return 0
