"""``untwine study``: run a sweep, query its results, compare its models.

    untwine study run STUDY.yaml [--out DIR] [--workers N] [--ray ADDRESS|auto] [--set KEY=VALUE]
    untwine study results DIR [--sort METRIC] [--ascending] [--where SQL] [--csv OUT] [--all-columns]
    untwine study compare DIR [--out FIG_DIR] [--metrics m1,m2]

See :mod:`untwine.study` (spec format, fault tolerance, database schema, plots).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "study",
        help="run a sweep of models x hyper-parameters x seeds, query its results table, compare models",
        description="Studies: many runs from one YAML file, one SQLite results table, comparison plots and UDR.",
    )
    sub = p.add_subparsers(dest="study_command", metavar="ACTION")

    r = sub.add_parser(
        "run",
        help="execute every unfinished run of a study file (parallel, resumable, retries failures)",
        description=(
            "Expand STUDY.yaml into runs and train + evaluate each unfinished one in parallel processes "
            "(or as Ray tasks with --ray). Re-running skips finished runs, resumes interrupted ones from "
            "their checkpoints and retries failed ones; results go to DIR/results.sqlite."
        ),
    )
    r.add_argument("spec", metavar="STUDY.yaml", help="the study file")
    r.add_argument("--out", metavar="DIR", help="study directory (default studies/NAME)")
    r.add_argument("--workers", type=int, default=1, metavar="N", help="parallel local worker processes (default 1)")
    r.add_argument("--ray", metavar="ADDRESS", help="run as Ray tasks on an existing cluster: auto or HOST:PORT")
    r.add_argument("--threads", type=int, metavar="T", help="torch threads per run (default cores / workers; 1 with --ray)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study key, dotted (e.g. train.steps=100, seeds=[0,1]); repeatable")
    r.add_argument("--no-udr", action="store_true", help="skip the UDR computation after the runs")
    r.add_argument("--no-progress", action="store_true", help="no progress output")
    r.set_defaults(func=run_cmd)

    q = sub.add_parser(
        "results",
        help="print the results table of a study (SQL filtering, sorting, CSV export)",
        description=(
            "Print one row per run from DIR/results.sqlite: status, model, dataset, seed, each "
            "hyper-parameter and each metric. --where takes an SQL condition over these columns, "
            "e.g. \"model='beta_vae' AND mig > 0.1\"."
        ),
    )
    q.add_argument("study_dir", metavar="DIR", help="a study directory made by `untwine study run`")
    q.add_argument("--sort", metavar="COLUMN", help="sort by this metric or column (descending unless --ascending)")
    q.add_argument("--ascending", action="store_true", help="sort ascending")
    q.add_argument("--where", metavar="SQL", help="SQL condition over the columns, e.g. \"model='beta_vae' AND mig > 0.1\"")
    q.add_argument("--status", choices=("pending", "running", "done", "failed"), help="only runs with this status")
    q.add_argument("--csv", metavar="OUT", help="also write the rows (all columns) to this CSV file")
    q.add_argument("--metrics", metavar="m1,m2", help="metric columns to print (default all)")
    q.add_argument("--all-columns", action="store_true", help="print every column (ids, timings, errors)")
    q.set_defaults(func=results_cmd)

    c = sub.add_parser(
        "compare",
        help="per-model metric distributions, rank correlations, hyper-parameter curves and a summary",
        description=(
            "Draw per-model box plots of every metric, the Spearman rank-correlation matrix between "
            "metrics and metric vs hyper-parameter curves; write summary.txt naming the leading model per metric."
        ),
    )
    c.add_argument("study_dir", metavar="DIR", help="a study directory made by `untwine study run`")
    c.add_argument("--out", metavar="FIG_DIR", help="figure directory (default DIR/compare)")
    c.add_argument("--metrics", metavar="m1,m2", help="only these metrics (default all)")
    c.set_defaults(func=compare_cmd)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def run_cmd(args) -> int:
    from rich.console import Console

    from untwine.errors import UntwineError
    from untwine.study.runner import run_study
    from untwine.study.spec import load_spec
    from untwine.train.config import parse_overrides

    overrides = parse_overrides(args.set)
    spec = load_spec(args.spec, overrides)
    if args.threads is not None and args.threads < 1:
        raise UntwineError(f"--threads must be a positive integer, got {args.threads}")
    out = Path(args.out) if args.out else Path("studies") / spec.name
    res = run_study(
        spec,
        out,
        workers=args.workers,
        ray=args.ray,
        progress=not args.no_progress,
        threads=args.threads,
        udr=False if args.no_udr else None,
    )
    con = Console()
    con.print(
        f"study {spec.name}: {len(res.runs)} runs, {len(res.done)} done now, {len(res.skipped)} already finished, "
        f"{len(res.failed)} failed; {res.wall_seconds:.1f}s; results in {out / 'results.sqlite'}",
        highlight=False,
    )
    for rid, err in res.failed.items():
        con.print(f"  failed {rid}: {err}", highlight=False, markup=False)
    for cid, err in res.udr_errors.items():
        con.print(f"  UDR failed for configuration {cid}: {err}", highlight=False, markup=False)
    return 1 if res.failed else 0


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        return f"{v:.4g}" if abs(v) >= 1000 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def results_cmd(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.errors import UntwineError
    from untwine.study.results import query, write_csv

    columns, rows, info = query(args.study_dir, where=args.where, sort=args.sort, descending=not args.ascending, status=args.status)
    if args.csv:
        write_csv(args.csv, columns, rows)
    m_cols = info["metrics"]
    if args.metrics:
        wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in m_cols]
        if unknown:
            raise UntwineError(f"--metrics: no metric {unknown[0]!r}; metrics: {', '.join(m_cols)}")
        m_cols = {m: m_cols[m] for m in wanted}
    if args.all_columns:
        shown = columns
    else:
        shown = ["run_id", "status", "model", "dataset", "seed", *info["hparams"].values(), *m_cols.values()]
    metric_cols = set(m_cols.values()) | set(info["metrics"].values())
    table = Table(title=f"{args.study_dir}: {len(rows)} run(s)", title_justify="left")
    for c in shown:
        numeric = c in metric_cols or c == "seed" or c in info["hparams"].values()
        table.add_column(c, justify="right" if numeric else "left", no_wrap=c != "error" and c != "status")
    for r in rows:
        cells = []
        for c in shown:
            v = r.get(c)
            if c in metric_cols or c in ("train_seconds", "eval_seconds", "wall_seconds", "updated"):
                cell = _fmt(v)
            else:
                cell = "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
            if c == "status" and v == "failed" and r.get("error"):
                cell = f"failed: {r['error']}"
            cells.append(cell)
        table.add_row(*cells)
    con = Console()
    if not con.is_terminal:  # piped or redirected: full rows rather than columns squeezed into 80 characters
        con = Console(width=max(80, min(1000, sum(max([len(c)] + [len(str(r.get(c))) for r in rows]) + 3 for c in shown))))
    con.print(table)
    if args.csv:
        con.print(f"wrote {len(rows)} row(s) to {args.csv}", highlight=False)
    return 0


def compare_cmd(args) -> int:
    from rich.console import Console

    from untwine.study.compare import compare_study

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    res = compare_study(args.study_dir, args.out, metrics=metrics)
    con = Console()
    con.print(res["summary"], highlight=False, markup=False, soft_wrap=True)
    con.print(f"figures in {res['out']}: {', '.join(Path(p).name for p in res['figures'])}", highlight=False)
    return 0
