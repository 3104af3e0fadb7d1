"""``untwine evaluate``: the whole metric suite on a trained run.

    untwine evaluate RUN_DIR [--metrics all|m1,m2] [--representation mean|sampled]
                     [--num-train 10000] [--num-test 5000] [--seed S]
                     [--interventional-train 10000] [--interventional-eval 5000]
                     [--device auto|cpu|cuda] [--dci-estimator fast|gbt]

Writes ``RUN_DIR/metrics.json`` (the keys of ``untwine score`` plus
``beta_vae_score``, ``factor_vae_score`` and ``reconstruction``) and prints a
table; see :mod:`untwine.train.evaluate`.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
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
        default="all",
        metavar="all|m1,m2",
        help="all, or a comma list of mig, sap, dci, modularity, explicitness, irs, unsupervised, infomec, "
        "beta_vae, factor_vae, reconstruction (default all)",
    )
    p.add_argument("--representation", choices=("mean", "sampled"), default="mean", help="posterior mean (default) or a sample")
    p.add_argument("--num-train", type=int, default=10000, metavar="N", help="train sample size (default 10000)")
    p.add_argument("--num-test", type=int, default=5000, metavar="N", help="test sample size (default 5000)")
    p.add_argument("--interventional-train", type=int, default=10000, metavar="N", help="BetaVAE/FactorVAE training points (default 10000)")
    p.add_argument("--interventional-eval", type=int, default=5000, metavar="N", help="BetaVAE/FactorVAE evaluation points (default 5000)")
    p.add_argument("--interventional-batch", type=int, default=64, metavar="B", help="BetaVAE/FactorVAE batch size (default 64)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the samples and estimators (default 0)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device for encoding (default auto)")
    p.add_argument("--dci-estimator", choices=("fast", "gbt"), default="fast", help="DCI importance estimator (default fast)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from untwine.train.evaluate import evaluate_run, read_settings
    from untwine.train.run import METRICS_FILE, open_run

    run_ = open_run(args.run_dir)  # one-line error before any work when not a run
    err = Console(stderr=True)
    with err.status("evaluating ...") as status:
        scores = evaluate_run(
            run_.path,
            metrics=args.metrics,
            representation=args.representation,
            num_train=args.num_train,
            num_test=args.num_test,
            seed=args.seed,
            device=args.device,
            interventional_train=args.interventional_train,
            interventional_eval=args.interventional_eval,
            interventional_batch=args.interventional_batch,
            dci_estimator=args.dci_estimator,
            progress=lambda msg: status.update(f"{msg} ..."),
        )
    table = Table(title=f"untwine evaluate {run_.path} ({run_.config.model} on {run_.config.dataset}, step {run_.step})", title_justify="left")
    table.add_column("score")
    table.add_column("value", justify="right")
    for k, v in scores.items():
        table.add_row(k, f"{v:.4f}")
    out = Console()
    out.print(table)
    out.print(
        f"samples: train {args.num_train}, test {args.num_test}; interventional {args.interventional_train}/"
        f"{args.interventional_eval} points of batch {args.interventional_batch}; representation {args.representation}; seed {args.seed}"
    )
    settings = read_settings(run_.path) or {}
    if settings.get("skipped"):
        out.print(f"skipped {', '.join(settings['skipped'])}: the dataset is not a full factor grid")
    out.print(f"wrote {run_.path / METRICS_FILE}")
    return 0
