"""``untwine directions``: directions in a run's generator, found and scored against ground truth.

    untwine directions RUN_DIR --method sefa|pca|voynov|householder|gradctrl|potential_flow|axes|random|all
                       [--num K] [--out DIR] [--seed S] [--device auto|cpu|cuda]
                       [--seeds N] [--steps T] [--range R] [--oracle-steps N] [--train-steps N]

Writes ``DIR/directions.npy`` ([K, latent_dim], unit rows, best first), ``DIR/scores.json`` and
``DIR/traversal.png`` (``--method all``: one sub-folder per method and one comparison
``DIR/scores.json``); default ``DIR`` is ``RUN_DIR/directions``.  See :mod:`untwine.directions`.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from untwine.directions.base import METHODS
    from untwine.directions.oracle import DEFAULT_STEPS as ORACLE_STEPS
    from untwine.directions.scoring import DEFAULT_RANGE, DEFAULT_SEEDS, DEFAULT_STEPS

    names = ", ".join(METHODS)
    p = subparsers.add_parser(
        "directions",
        help="find directions in a run's generator (SeFa, GANSpace, Voynov, Householder, GradCtrl, potential flows) "
             "and score them against the known factors",
        description=(
            "Find K directions in the latent space of a trained run's generator with one method (or all) and score "
            "them with the dataset's oracle (a CNN reading the factors of decoded images, trained and cached on "
            f"first use): effect matrix [directions x factors], DCI-style disentanglement and completeness, a "
            f"MIG-style gap and the Hungarian alignment. Methods: {names}."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory made by `untwine train`")
    p.add_argument("--method", default="sefa", metavar="NAME", help=f"one of {names}, or all (default sefa)")
    p.add_argument("--num", type=int, default=None, metavar="K", help="directions to find (default min(10, latents))")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN_DIR/directions)")
    p.add_argument("--seed", type=int, default=0, help="seed of latents and learnt methods (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                   help=f"latents traversed per direction when scoring (default {DEFAULT_SEEDS})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, metavar="T",
                   help=f"points per traversal when scoring (default {DEFAULT_STEPS})")
    p.add_argument("--range", type=float, default=DEFAULT_RANGE, dest="range_scale", metavar="R",
                   help=f"traverse +-R times the prior's spread (default {DEFAULT_RANGE})")
    p.add_argument("--oracle-steps", type=int, default=ORACLE_STEPS, metavar="N",
                   help=f"training steps of the oracle when it is not cached yet (default {ORACLE_STEPS})")
    p.add_argument("--train-steps", type=int, default=None, metavar="N",
                   help="training steps of the learnt methods (voynov, gradctrl, potential_flow, householder)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from untwine.directions.run import find_directions, format_table

    options = None
    if args.train_steps is not None:
        options = {m: {"steps": args.train_steps} for m in ("voynov", "gradctrl", "potential_flow", "householder")}
    result = find_directions(
        args.run_dir, args.method, args.num, args.out, seed=args.seed, device=args.device, num_seeds=args.seeds,
        steps=args.steps, range_scale=args.range_scale, oracle_steps=args.oracle_steps, options=options,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    acc = result["oracle"].get("mean_accuracy")
    print(f"oracle: mean accuracy {acc:.3f} ({result['oracle']['path']})" if acc is not None else "oracle: -")
    print(format_table(result))
    out = args.out or f"{args.run_dir}/directions"
    print(f"wrote {out}/scores.json")
    return 0
