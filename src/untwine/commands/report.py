"""``untwine report``: one self-contained HTML page about a trained run.

    untwine report RUN_DIR [--out FILE] [--num-samples N] [--seed S]
    untwine report SAE_DIR [--out FILE]

Writes ``RUN_DIR/report.html`` (see :mod:`untwine.viz.report`): config, metric
table, traversals, reconstructions, heatmaps, active/passive latents and training
curves, with every image embedded.  An SAE directory (``cfg.json`` +
``sae_weights.safetensors``) gets its own page (:mod:`untwine.viz.sae_report`) from the
``evaluation.json`` that ``untwine sae evaluate DIR ACTS --factors F`` writes.
"""

from __future__ import annotations

import argparse

from untwine.viz.report import DEFAULT_NUM_SAMPLES, MIN_SAMPLES


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report.html: one self-contained page about a trained run or an SAE",
        description=(
            "Write one HTML page (images embedded, no external resources) with the run's config, metrics, "
            "latent traversals, reconstructions, factor x latent heatmaps, active/passive latents and "
            "training curves; for an SAE directory, its scores beside the concept baselines, factor x latent "
            "heatmaps, top sentences, config and training curves (from `untwine sae evaluate ... --factors`)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory made by `untwine train`, or an SAE directory")
    p.add_argument("--out", metavar="FILE", help="output file (default RUN_DIR/report.html)")
    p.add_argument("--num-samples", type=int, default=DEFAULT_NUM_SAMPLES,
                   help=f"images drawn for the computations (default {DEFAULT_NUM_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn images and estimators (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.set_defaults(func=run)
    return p


def check_inputs(args) -> None:
    """Every option checked before any work: seed, sample count, device, a writable ``--out``; an SAE
    folder's weights must load, and a directions folder is pointed to its run."""
    from pathlib import Path

    from untwine._checks import check_seed
    from untwine.errors import UntwineError
    from untwine.files import check_output_file, read_json
    from untwine.sae.io import is_sae_dir, load_sae
    from untwine.device import resolve_device

    check_seed(args.seed)
    if args.num_samples < MIN_SAMPLES:
        raise UntwineError(f"--num-samples must be at least {MIN_SAMPLES}, got {args.num_samples}")
    resolve_device(args.device)
    folder = Path(args.run_dir)
    if not folder.is_dir():
        raise UntwineError(f"{folder}: no such folder; give a run directory or an SAE directory")
    check_output_file(args.out or folder / "report.html", "--out")
    scores = folder / "scores.json"
    if not is_sae_dir(folder) and scores.is_file() and not (folder / "run.json").is_file():
        data = read_json(scores, what="directions scores")
        if isinstance(data, dict) and "methods" in data:
            raise UntwineError(f"{folder} holds the output of `untwine directions`; its report is part of the run's: "
                               f"untwine report {data.get('run') or 'RUN_DIR'}")
    if is_sae_dir(folder):
        load_sae(folder)  # damaged weights or config: one error line, not a page about them


def run(args) -> int:
    from untwine.sae.io import is_sae_dir

    check_inputs(args)
    if is_sae_dir(args.run_dir):  # the page kind: an SAE folder's own page, from its evaluation.json
        from untwine.viz.sae_report import build_sae_report

        path = build_sae_report(args.run_dir, out=args.out)
    else:
        from untwine.viz.report import build_report

        path = build_report(args.run_dir, out=args.out, num_samples=args.num_samples, seed=args.seed,
                            device=args.device)
    print(f"wrote {path}")
    return 0
