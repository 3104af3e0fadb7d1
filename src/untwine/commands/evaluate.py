"""``untwine evaluate``: the whole metric suite on a trained run.

    untwine evaluate RUN_DIR [--metrics all|m1,m2] [--representation mean|sampled]
                     [--num-train 10000] [--num-test 5000] [--seed S]
                     [--interventional-train 10000] [--interventional-eval 5000]
                     [--device auto|cpu|cuda] [--dci-estimator fast|gbt]
                     [--[no-]compare-representations] [--compare-metrics mig,modularity,unsupervised]
                     [--kl-threshold 0.01]

Writes ``RUN_DIR/metrics.json`` (the keys of ``untwine score`` plus
``beta_vae_score``, ``factor_vae_score``, ``reconstruction`` (models with a decoder),
``accuracy.<factor>``/``accuracy_mean`` (models with factor heads: ``factor_classifier``),
``num_active_latents``/``num_passive_latents`` and, with
``--compare-representations``, ``mean.*``/``sampled.*``/``mean_active.*``) and
prints the score table, the active/passive latents table and the mean vs sampled
vs active-only comparison; see :mod:`untwine.train.evaluate`.  The ``*_test`` scores
come from test rows that are never train rows (the data set's own test split, or rows
set aside), except on procedural full grids, where both are independent draws of the same
distribution; ``metrics.json`` says which under ``_test_split``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    from untwine.metrics import registry
    from untwine.metrics.activity import REPRESENTATIONS
    from untwine.train.config import EvaluationConfig

    d = EvaluationConfig()
    p = subparsers.add_parser(
        "evaluate",
        help="compute every disentanglement metric on a trained run, write RUN_DIR/metrics.json",
        description=(
            "Encode fresh train/test samples of the run's dataset and compute the array metrics, the "
            "BetaVAE and FactorVAE scores and the reconstruction error; writes RUN_DIR/metrics.json."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by `untwine train`")
    p.add_argument(
        "--metrics",
        default=d.metrics,
        metavar="all|m1,m2",
        help=f"all, or a comma list of {registry.help_list(registry.KINDS)} (default {d.metrics})",
    )
    p.add_argument("--representation", choices=REPRESENTATIONS, default=d.representation,
                   help=f"posterior mean or a sample (default {d.representation})")
    p.add_argument("--num-train", type=int, default=d.num_train, metavar="N", help=f"train sample size (default {d.num_train})")
    p.add_argument("--num-test", type=int, default=d.num_test, metavar="N", help=f"test sample size (default {d.num_test})")
    p.add_argument("--interventional-train", type=int, default=d.interventional_train, metavar="N",
                   help=f"BetaVAE/FactorVAE training points (default {d.interventional_train})")
    p.add_argument("--interventional-eval", type=int, default=d.interventional_eval, metavar="N",
                   help=f"BetaVAE/FactorVAE evaluation points (default {d.interventional_eval})")
    p.add_argument("--interventional-batch", type=int, default=d.interventional_batch, metavar="B",
                   help=f"BetaVAE/FactorVAE batch size (default {d.interventional_batch})")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S", help=f"seed of the samples and estimators (default {d.seed})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help=f"device for encoding (default {d.device})")
    p.add_argument("--dci-estimator", choices=registry.DCI_ESTIMATORS, default=d.dci_estimator,
                   help=f"DCI importance estimator (default {d.dci_estimator})")
    p.add_argument(
        "--compare-representations",
        action=argparse.BooleanOptionalAction,
        default=d.compare_representations,
        help="also compute --compare-metrics on the mean, the sampled and the active-only mean representation "
        f"(keys mean.*, sampled.*, mean_active.*; default {'on' if d.compare_representations else 'off'})",
    )
    p.add_argument(
        "--compare-metrics",
        default=d.compare_metrics,
        metavar="m1,m2",
        help=f"array metrics of the comparison: all, or some of {registry.help_list()} (default {d.compare_metrics})",
    )
    p.add_argument("--precision", choices=("float32", "bfloat16"), default=d.precision,
                   help="encoder arithmetic: float32 (default, exact) or bfloat16 (opt-in, about 2x faster on CPUs "
                   "with bfloat16 units; scores differ slightly)")
    p.add_argument(
        "--reference-scores",
        action=argparse.BooleanOptionalAction,
        default=d.reference_scores,
        help="also score a random encoder and the factors themselves on the same samples, for the report's "
        f"headline (cached per dataset and settings; default {'on' if d.reference_scores else 'off'})",
    )
    p.add_argument(
        "--kl-threshold",
        type=float,
        default=d.kl_threshold,
        metavar="NATS",
        help=f"a Gaussian latent whose average KL to the prior is below this is passive (default {d.kl_threshold})",
    )
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.progress import Phases
    from untwine.train.config import EVALUATION_FIELDS, EvaluationConfig
    from untwine.train.evaluate import evaluate_run, read_settings
    from untwine.train.run import METRICS_FILE, open_run

    cfg = EvaluationConfig(**{k: getattr(args, k) for k in EVALUATION_FIELDS}).validate()
    run_ = open_run(args.run_dir)  # one-line error before any work when not a run
    with Phases(prefix="evaluate: ") as phases:
        scores = evaluate_run(run_.path, cfg, progress=phases)
    table = Table(title=f"untwine evaluate {run_.path} ({run_.config.model} on {run_.config.dataset}, step {run_.step})", title_justify="left")
    table.add_column("score")
    table.add_column("value", justify="right")
    compared = ("mean.", "sampled.", "mean_active.")
    for k, v in scores.items():
        if not k.startswith(compared):
            table.add_row(k, f"{v:.4f}")
    out = Console()
    out.print(table)
    settings = read_settings(run_.path) or {}
    _print_activity(out, settings.get("activity"))
    _print_comparison(out, scores, settings.get("comparison") or {})
    split = settings.get("test_split") or {}
    if split:
        out.print(f"test rows: {split.get('kind')} ({split.get('note')})")
    out.print(
        f"samples: train {cfg.num_train}, test {cfg.num_test}; interventional {cfg.interventional_train}/"
        f"{cfg.interventional_eval} points of batch {cfg.interventional_batch}; representation {cfg.representation}; seed {cfg.seed}"
    )
    reasons = settings.get("skipped_reasons") or {}
    for name in settings.get("skipped") or ():
        out.print(f"skipped {name}: {reasons.get(name, 'does not apply to this run')}")
    out.print(f"wrote {run_.path / METRICS_FILE}")
    if settings.get("findings"):
        from untwine.metrics.findings import describe

        out.print("\nIn short: " + describe(settings["findings"], scores, settings.get("reference")), soft_wrap=True)
    return 0


def _fmt(v) -> str:
    return "-" if v is None or v != v else f"{v:.4f}"


def _fmt_small(v) -> str:
    """Four significant digits: passive latents' tiny KLs and variances stay readable."""
    return "-" if v is None or v != v else f"{v:.4g}"


def _print_activity(out, activity: dict | None) -> None:
    """Active/passive latents table (from evaluation.json's ``activity``)."""
    if not activity:
        return
    from rich.table import Table

    det = activity.get("deterministic")
    rule = (
        f"std below {activity['threshold']:g} x the largest latent std"
        if det
        else f"average KL below {activity['threshold']:g} nats"
    )
    t = Table(
        title=f"latents: {len(activity['active_latents'])} active, {len(activity['passive_latents'])} passive "
        f"(passive = {rule})",
        title_justify="left",
    )
    t.add_column("latent", justify="right")
    if not det:
        t.add_column("KL (nats)", justify="right")
    t.add_column("var(mean)", justify="right")
    if not det:
        t.add_column("mean posterior var", justify="right")
    t.add_column("status")
    for row in activity["latents"]:
        cells = [str(row["index"])]
        if not det:
            cells.append(_fmt_small(row["kl"]))
        cells.append(_fmt_small(row["mean_variance"]))
        if not det:
            cells.append(_fmt_small(row["posterior_variance"]))
        cells.append("active" if row["active"] else "[dim]passive[/dim]")
        t.add_row(*cells)
    out.print(t)


def _print_comparison(out, scores: dict, comparison: dict) -> None:
    """Mean vs sampled vs active-only table of the ``mean.*``/``sampled.*``/``mean_active.*`` keys."""
    keys = [k[len("mean."):] for k in scores if k.startswith("mean.")]
    if keys:
        from rich.table import Table

        t = Table(title="representations (Be More Active!): mean vs sampled vs mean without passive latents", title_justify="left")
        t.add_column("score")
        for col in ("mean", "sampled", "mean, active only"):
            t.add_column(col, justify="right")
        for k in keys:
            t.add_row(k, *(_fmt(scores.get(f"{rep}.{k}")) for rep in ("mean", "sampled", "mean_active")))
        out.print(t)
        if scores.get("num_active_latents") == 0:
            out.print("no latent is active: the active-only column is empty")
    if comparison.get("deterministic_encoder"):
        out.print("deterministic encoder: no posterior variance, the sampled representation equals the mean one; "
                  "passive latents are those with a near-constant code")
