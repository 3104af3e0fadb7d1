"""``untwine train``: train a disentangling model into a run directory.

    untwine train MODEL --dataset NAME [--set key=value ...] [--config run.yaml]
                  [--steps N] [--out RUN_DIR] [--device auto|cpu|cuda] [--seed S]
                  [--batch-size B] [--resume] [--overwrite] [--tensorboard]
    untwine train --resume --out RUN_DIR [--steps N]       # continue a run

Settings are resolved from defaults < --config file < explicit options < --set
(see :mod:`untwine.train.config`); the resolved config is saved as
``RUN_DIR/config.yaml``.  Ctrl-C writes a checkpoint and exits; ``--resume``
continues from the last checkpoint and reproduces the uninterrupted run.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a disentangling model (VAE family, QLAE) on a ground-truth dataset",
        description=(
            "Train MODEL on a dataset with a progress bar, a CSV log of every loss term and atomic "
            "checkpoints; an interrupted run continues with --resume. Settings: defaults < --config "
            "< options < --set key=value (model hyper-parameters by name, e.g. --set beta=4)."
        ),
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="model name from untwine.models.MODELS, e.g. beta_vae, beta_tcvae, factor_vae, qlae (an unknown name lists them all)")
    p.add_argument("--dataset", metavar="NAME", help="built-in dataset name or a dataset file path, e.g. dsprites")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key or hyper-parameter (repeatable)")
    p.add_argument("--config", metavar="FILE", help="YAML run config (keys of config.yaml)")
    p.add_argument("--steps", type=int, metavar="N", help="total training steps (default 5000)")
    p.add_argument("--batch-size", type=int, metavar="B", help="batch size (default 64)")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/MODEL-DATASET-TIMESTAMP)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto (default): CUDA when available")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint interval in steps (default 1000)")
    p.add_argument("--log-every", type=int, metavar="N", help="log.csv row interval in steps (default 10)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--tensorboard", action="store_true", default=None, help="also log to RUN_DIR/tensorboard (needs tensorboard)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from untwine.errors import UntwineError
    from untwine.train import train

    if args.resume and args.overwrite:
        raise UntwineError("--resume and --overwrite contradict each other; choose one")
    if args.resume and not args.out:
        raise UntwineError("--resume needs --out RUN_DIR (the run to continue)")
    result = train(
        args.model,
        args.dataset,
        steps=args.steps,
        out=args.out,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        set=args.set,
        config=args.config,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        verbose=True,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        tensorboard=args.tensorboard,
    )
    print(f"run directory: {result.path}  (step {result.step}; next: untwine evaluate {result.path})")
    return 0
