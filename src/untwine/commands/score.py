"""``untwine score``: every array metric on codes and factors read from files.

    untwine score CODES FACTORS [--test-codes F --test-factors F]
                  [--metrics all|m1,m2] [--json OUT] [--seed S] [--key K]
                  [--factor-bins N] [--dci-estimator fast|gbt]
    untwine score --demo [--json OUT]

Files are ``.npy``, ``.npz`` (first array, ``--key K`` or ``file.npz:K``),
``.csv`` or ``.tsv`` (see :mod:`untwine.io`).  Without a test split the rows
are split 2:1 at random (seeded by ``--seed``).  Prints a table of the scores,
the sizes and the split; ``--json OUT`` writes one flat JSON object whose keys
are the computed scores (see :data:`untwine.metrics.suite.SCORE_KEYS`).
``--demo`` scores a generated example (:mod:`untwine.examples`) instead of
files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from untwine._checks import as_codes, as_factors, discretize_factors, same_rows
from untwine.errors import UntwineError

#: scores reported on the test split (their models are fitted on the train split)
TEST_KEYS = frozenset({"sap", "dci_informativeness_test", "explicitness_test"})

#: rows of the generated example scored by ``--demo`` (split 2:1)
DEMO_ROWS = 1500


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score",
        help="compute every disentanglement metric on codes and factors arrays",
        description=(
            "Compute MIG, SAP, DCI, Modularity, Explicitness, IRS, the unsupervised scores and "
            "InfoMEC on codes [N, D] and integer factors [N, K] read from .npy/.npz/.csv/.tsv files. "
            "Without --test-codes/--test-factors the rows are split 2:1 at random (seeded). "
            "--demo scores a generated example instead of files."
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
        help="metrics to compute: all, or a comma list of mig, sap, dci, modularity, explicitness, irs, "
        "unsupervised, infomec (default: all)",
    )
    p.add_argument("--json", metavar="OUT", help="write the scores to OUT as one flat JSON object")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split and the estimators (default 0)")
    p.add_argument("--key", metavar="K", help="array name inside .npz files (default: the first array); FILE.npz:K picks one per file")
    p.add_argument(
        "--factor-bins",
        type=int,
        metavar="N",
        help="discretise continuous factors into N equal-width bins (integer factors with at most N values keep their classes)",
    )
    p.add_argument(
        "--dci-estimator",
        choices=("fast", "gbt"),
        default="fast",
        help="DCI importance estimator: fast (default) or gbt, the reference gradient-boosted trees (minutes)",
    )
    p.add_argument("--demo", action="store_true", help="score a generated dSprites-like example instead of files")
    p.set_defaults(func=run)
    return p


def _load_pair(codes_path: str, factors_path: str, key: str | None, label: str = ""):
    from untwine.io import read_array

    codes = read_array(codes_path, key)
    factors = read_array(factors_path, key)
    return (
        codes,
        factors,
        f"{label}codes ({codes_path})",
        f"{label}factors ({factors_path})",
    )


def _validated(codes, factors, cname: str, fname: str, factor_bins: int | None):
    c = as_codes(codes, cname)
    if factor_bins is not None:
        # discretize_factors names its array "factors"; re-check for the file's name first
        as_codes(factors, fname)
        factors = discretize_factors(factors, factor_bins)
    f = as_factors(factors, fname)
    same_rows(c, f, cname, fname)
    return c, f


def _json_value(x: float):
    return x if math.isfinite(x) else None


def write_scores_json(path: str | os.PathLike, scores: dict[str, float]) -> None:
    """Write ``scores`` to ``path`` atomically as one flat JSON object (NaN/inf as null)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({k: _json_value(v) for k, v in scores.items()}, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, p)
    except OSError as exc:
        raise UntwineError(f"{p}: cannot write JSON ({exc.strerror or exc})") from None


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.metrics.suite import (
        METRIC_KEYS,
        evaluate_arrays,
        parse_metric_names,
        split_train_test,
    )

    names = parse_metric_names(args.metrics)
    if args.factor_bins is not None and args.factor_bins < 2:
        raise UntwineError(f"--factor-bins must be at least 2, got {args.factor_bins}")
    if (args.test_codes is None) != (args.test_factors is None):
        given, missing = ("--test-codes", "--test-factors") if args.test_codes else ("--test-factors", "--test-codes")
        raise UntwineError(f"{given} needs {missing} as well")

    if args.demo:
        if args.codes or args.factors or args.test_codes:
            raise UntwineError("--demo scores a generated example; do not give CODES/FACTORS files with it")
        from untwine.examples import make_example_arrays

        codes, factors = make_example_arrays(n=DEMO_ROWS, seed=args.seed)
        tr_c, tr_f, te_c, te_f = split_train_test(codes, factors, args.seed)
        source = f"generated example (dSprites-like factors, seed {args.seed})"
        split = f"seeded 2:1 split of {codes.shape[0]} rows, seed {args.seed}"
    else:
        if not args.codes or not args.factors:
            raise UntwineError("give CODES and FACTORS files (or --demo for a generated example)")
        codes, factors, cname, fname = _load_pair(args.codes, args.factors, args.key)
        if args.test_codes is None:
            tr_c, tr_f = _validated(codes, factors, cname, fname, args.factor_bins)
            n = tr_c.shape[0]
            tr_c, tr_f, te_c, te_f = split_train_test(tr_c, tr_f, args.seed)
            split = f"seeded 2:1 split of {n} rows, seed {args.seed}"
        else:
            t_codes, t_factors, tcname, tfname = _load_pair(args.test_codes, args.test_factors, args.key, "test ")
            if args.factor_bins is not None:
                # one set of bin edges for both splits: discretise the rows together
                fa = as_codes(factors, fname)
                fb = as_codes(t_factors, tfname)
                if fa.shape[1] != fb.shape[1]:
                    raise UntwineError(
                        f"{fname} has {fa.shape[1]} columns but {tfname} has {fb.shape[1]}; they must match"
                    )
                both = discretize_factors(np.concatenate([fa, fb]), args.factor_bins)
                factors, t_factors = both[: fa.shape[0]], both[fa.shape[0] :]
            tr_c, tr_f = _validated(codes, factors, cname, fname, None)
            te_c, te_f = _validated(t_codes, t_factors, tcname, tfname, None)
            if te_c.shape[1] != tr_c.shape[1]:
                raise UntwineError(f"{cname} has {tr_c.shape[1]} columns but {tcname} has {te_c.shape[1]}; they must match")
            if te_f.shape[1] != tr_f.shape[1]:
                raise UntwineError(f"{fname} has {tr_f.shape[1]} columns but {tfname} has {te_f.shape[1]}; they must match")
            split = "given test split"
        source = f"{args.codes}, {args.factors}"

    err = Console(stderr=True)
    t0 = time.perf_counter()
    with err.status("scoring ...") as status:

        def progress(name: str, i: int, total: int) -> None:
            status.update(f"computing {name} ({i + 1}/{total}) ...")

        scores, timings = evaluate_arrays(
            tr_c,
            tr_f,
            te_c,
            te_f,
            metrics=names,
            seed=args.seed,
            dci_estimator=args.dci_estimator,
            progress=progress,
            return_timings=True,
        )
    total = time.perf_counter() - t0

    classes = ", ".join(str(len(np.unique(tr_f[:, k]))) for k in range(tr_f.shape[1]))
    table = Table(title="untwine score", title_justify="left")
    table.add_column("score")
    table.add_column("value", justify="right")
    table.add_column("on")
    table.add_column("time", justify="right")
    for name in names:
        keys = METRIC_KEYS[name]
        for j, key in enumerate(keys):
            table.add_row(
                key,
                f"{scores[key]:.4f}",
                "test" if key in TEST_KEYS else "train",
                f"{timings[name]:.2f}s" if j == 0 else "",
                end_section=j == len(keys) - 1,
            )
    out = Console()
    out.print(f"data:  {source}")
    out.print(
        f"sizes: train {tr_c.shape[0]} rows, test {te_c.shape[0]} rows ({split}); "
        f"{tr_c.shape[1]} latents; {tr_f.shape[1]} factors with {classes} classes"
    )
    if "dci" in names:
        out.print(f"dci estimator: {args.dci_estimator}")
    out.print(table)
    if any(m in names for m in ("sap", "dci", "explicitness")):
        out.print("SAP, DCI and Explicitness fit their models on the train split.")
    out.print(f"total {total:.2f}s")
    if args.json:
        write_scores_json(args.json, scores)
        out.print(f"wrote {args.json}")
    return 0
