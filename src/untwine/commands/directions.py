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
    # nothing from untwine.directions is imported here: it needs torch, and the parser must start fast;
    # the method names and the defaults live in the library (an unknown method lists the valid ones)
    p = subparsers.add_parser(
        "directions",
        help="find directions in a run's generator (SeFa, GANSpace, Voynov, Householder, GradCtrl, potential flows) "
             "and score them against the known factors",
        description=(
            "Find K directions in the latent space of a trained run's generator with one method (or all) and score "
            "them with the dataset's oracle (a CNN reading the factors of decoded images, trained and cached on "
            "first use): effect matrix [directions x factors], DCI-style disentanglement and completeness, a "
            "MIG-style gap and the Hungarian alignment. Methods: untwine.directions.METHODS (sefa, pca, voynov, "
            "householder, gradctrl, potential_flow and the baselines axes and random)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory made by `untwine train`")
    p.add_argument("--method", default="sefa", metavar="NAME", help="a method of untwine.directions, or all (default sefa)")
    p.add_argument("--num", type=int, default=None, metavar="K", help="directions to find (default min(10, latents))")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN_DIR/directions)")
    p.add_argument("--seed", type=int, default=0, help="seed of latents and learnt methods (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="latents traversed per direction when scoring (default: untwine.directions.scoring's, 64)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="points per traversal when scoring (default: the scoring's, 9)")
    p.add_argument("--range", type=float, default=None, dest="range_scale", metavar="R",
                   help="traverse +-R times the prior's spread (default: the scoring's, 2)")
    p.add_argument("--oracle-steps", type=int, default=None, metavar="N",
                   help="training steps of the oracle when it is not cached yet (default: the oracle's, 2000)")
    p.add_argument("--train-steps", type=int, default=None, metavar="N",
                   help="training steps of the learnt methods (those of untwine.directions.METHODS with learnt=True: "
                        "voynov, gradctrl, potential_flow, householder)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from untwine.directions.methods import learnt_methods
    from untwine.directions.findings import describe
    from untwine.directions.run import find_directions, format_table

    options = None
    if args.train_steps is not None:
        learnt = learnt_methods()
        if args.method != "all" and args.method not in learnt:
            print(f"warning: --train-steps applies to the learnt methods ({', '.join(learnt)}); "
                  f"{args.method} does not train, so it is ignored", file=sys.stderr)
        options = {m: {"steps": args.train_steps} for m in learnt}
    given = {k: v for k, v in (("num_seeds", args.seeds), ("steps", args.steps), ("range_scale", args.range_scale),
                               ("oracle_steps", args.oracle_steps)) if v is not None}
    result = find_directions(
        args.run_dir, args.method, args.num, args.out, seed=args.seed, device=args.device, options=options,
        log=lambda msg: print(msg, file=sys.stderr, flush=True), **given,
    )
    acc = result["oracle"].get("mean_accuracy")
    print(f"oracle: mean accuracy {acc:.3f} ({result['oracle']['path']})" if acc is not None else "oracle: -")
    print(format_table(result))
    out = args.out or f"{args.run_dir}/directions"
    print(f"wrote {out}/scores.json")
    print()
    print(f"In short: {describe(result)}")
    return 0
