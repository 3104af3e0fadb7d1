"""``untwine score``: every array metric on codes and factors read from files.

    untwine score CODES FACTORS [--test-codes F --test-factors F]
                  [--metrics all|m1,m2] [--json OUT] [--seed S] [--key K]
                  [--factor-bins N] [--dci-estimator fast|gbt]
    untwine score --demo [--json OUT]

Files are ``.npy``, ``.npz`` (its only array, ``--key K`` or ``file.npz:K``),
``.csv`` or ``.tsv`` (see :mod:`untwine.arrays`).  Without a test split the rows
are split 2:1 at random (seeded by ``--seed``).  Prints a table of the scores,
the sizes and the split; ``--json OUT`` writes one flat JSON object whose keys
are the computed scores (see :data:`untwine.metrics.suite.SCORE_KEYS`), undefined ones
listed under ``_undefined`` and DCI's estimator under ``_dci_estimator``.
``--demo`` scores a generated example (:mod:`untwine.examples`) instead of
files.
"""

from __future__ import annotations

import argparse
import time


def add_parser(subparsers) -> argparse.ArgumentParser:
    from untwine.metrics import registry

    p = subparsers.add_parser(
        "score",
        help="compute every disentanglement metric on codes and factors arrays",
        description=(
            f"Compute the metrics ({registry.help_list()}) on codes [N, D] and integer factors [N, K] read from "
            ".npy/.npz/.csv/.tsv files. Without --test-codes/--test-factors the rows are split 2:1 at random "
            "(seeded). --demo scores a generated example instead of files."
        ),
    )
    p.add_argument("codes", nargs="?", metavar="CODES", help="codes file [N, D] (.npy, .npz, .csv, .tsv)")
    p.add_argument("factors", nargs="?", metavar="FACTORS", help="factors file [N, K] of integer classes")
    p.add_argument("--test-codes", metavar="F", help="codes of a separate test split")
    p.add_argument("--test-factors", metavar="F", help="factors of a separate test split")
    p.add_argument(
        "--metrics",
        default="all",
        metavar="all|m1,m2",
        help=f"metrics to compute: all, or a comma list of {registry.help_list()} (default: all)",
    )
    p.add_argument("--json", metavar="OUT", help="write the scores to OUT as one flat JSON object")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split and the estimators (default 0)")
    p.add_argument("--key", metavar="K", help="array name inside .npz files holding several arrays; FILE.npz:K picks one per file")
    p.add_argument(
        "--factor-bins",
        type=int,
        metavar="N",
        help="discretise continuous factors into N equal-width bins (integer factors with at most N values keep their classes)",
    )
    p.add_argument(
        "--dci-estimator",
        choices=registry.DCI_ESTIMATORS,
        default="fast",
        help="DCI importance estimator: fast (default) or gbt, the reference gradient-boosted trees (minutes)",
    )
    p.add_argument("--demo", action="store_true", help="score a generated dSprites-like example instead of files")
    p.set_defaults(func=run)
    return p


def _requested(spec: str) -> list[str]:
    """The metric names ``--metrics`` asks for ([] when it is invalid: scoring then says why)."""
    from untwine.errors import UntwineError
    from untwine.metrics import registry

    try:
        return registry.parse(spec)
    except UntwineError:
        return []


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.metrics import registry
    from untwine.metrics.score_files import score_files

    if args.dci_estimator == "fast" and "dci" in _requested(args.metrics):
        from untwine.metrics.dci import import_lightgbm_without_sklearn

        import_lightgbm_without_sklearn()  # start-up: LightGBM's scikit-learn import is not needed here
    err = Console(stderr=True)
    t0 = time.perf_counter()
    with err.status("scoring ...") as status:

        def progress(name: str, i: int, total: int) -> None:
            status.update(f"computing {name} ({i + 1}/{total}) ...")

        res = score_files(
            args.codes,
            args.factors,
            test_codes=args.test_codes,
            test_factors=args.test_factors,
            key=args.key,
            factor_bins=args.factor_bins,
            metrics=args.metrics,
            seed=args.seed,
            dci_estimator=args.dci_estimator,
            demo=args.demo,
            json_out=args.json,
            progress=progress,
        )
    total = time.perf_counter() - t0

    on_test = registry.test_keys()
    table = Table(title="untwine score", title_justify="left")
    table.add_column("score")
    table.add_column("value", justify="right")
    table.add_column("on")
    table.add_column("time", justify="right")
    for name in res.metrics:
        keys = registry.METRICS[name].keys
        for j, key in enumerate(keys):
            table.add_row(
                key,
                f"{res.scores[key]:.4f}",
                "test" if key in on_test else "train",
                f"{res.timings[name]:.2f}s" if j == 0 else "",
                end_section=j == len(keys) - 1,
            )
    out = Console()
    out.print(f"data:  {res.source}")
    out.print(
        f"sizes: train {res.train_rows} rows, test {res.test_rows} rows ({res.split}); "
        f"{res.num_latents} latents; {len(res.classes)} factors with {', '.join(map(str, res.classes))} classes"
    )
    if "dci" in res.metrics:
        out.print(f"dci estimator: {res.dci_estimator} ({registry.DCI_ESTIMATOR_TEXT[res.dci_estimator]})")
    out.print(table)
    if any(registry.METRICS[m].inputs == "train_test" for m in res.metrics):
        out.print("SAP, DCI and Explicitness fit their models on the train split.")
    out.print(f"total {total:.2f}s")
    if args.json:
        out.print(f"wrote {args.json}")
    return 0
