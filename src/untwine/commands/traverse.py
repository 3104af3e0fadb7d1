"""``untwine traverse``: latent traversals of a trained run as a PNG grid or a GIF.

    untwine traverse RUN_DIR [--out traversal.png|.gif] [--latents 0,3,5]
                     [--range=-2,2 | --range -2 2] [--steps 10] [--seed S]

Rows are latents, most active first (average KL to the prior for Gaussian
encoders, variance of the codes otherwise, measured on ``--num-samples`` drawn
images); ``--latents`` picks rows in the given order.  Columns sweep the latent
from the code of a seed image (drawn with ``--seed``) over ``--range`` (default: the
prior's -2..2 for VAEs, the codebook values for QLAE, the codes' range for an AE).
``.gif`` writes an animation per latent side by side.

Runs on time series (observations ``[C, T]``) get small multiples of curves instead:
one panel per latent (same order and values), each overlaying the decoded series of
its sweep (:func:`untwine.viz.series.plot_series_traversal`); they write ``.png`` only.
"""

from __future__ import annotations

import argparse

import numpy as np

from untwine.errors import UntwineError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "traverse",
        help="draw latent traversals of a trained run (PNG grid or GIF animation; curves for time series)",
        description=(
            "Decode sweeps of each latent around the code of a seed image. Rows: latents, most active first; "
            "columns: values over the prior's range (VAEs), the codebook (QLAE) or --range. Runs on time series "
            "[C, T] draw one panel of overlaid curves per latent instead (PNG only)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory made by `untwine train`")
    p.add_argument("--out", metavar="FILE", help="output .png or .gif (default RUN_DIR/traversal.png)")
    p.add_argument("--latents", metavar="I,J,...", help="latent indices to show, in this order (default: all)")
    p.add_argument(
        "--range",
        nargs="+",
        metavar="LO,HI",
        dest="value_range",
        help="values to sweep: --range=-2,2 or --range -2 2 (default: prior range, or codebook values for QLAE)",
    )
    p.add_argument("--steps", type=int, default=10, help="columns when sweeping a range (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed that picks the seed image and samples (default 0)")
    p.add_argument("--num-samples", type=int, default=1000, help="images used to order latents by activity")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda (default cpu)")
    p.set_defaults(func=run)
    return p


def parse_latents(text: str | None):
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise UntwineError(f"--latents expects comma-separated integers, got {part!r}") from None
    if not out:
        raise UntwineError("--latents is empty")
    return out


def parse_range(items):
    if items is None:
        return None
    parts = [s for item in items for s in str(item).split(",") if s.strip()]
    if len(parts) != 2:
        raise UntwineError(f"--range expects two numbers LO,HI, got {' '.join(items)!r}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise UntwineError(f"--range expects two numbers LO,HI, got {' '.join(items)!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise UntwineError(f"--range must be two finite numbers with LO < HI, got {lo:g},{hi:g}")
    return lo, hi


def run(args) -> int:
    from untwine.viz.traversal import traverse_run

    path = traverse_run(
        args.run_dir,
        out=args.out,
        latents=parse_latents(args.latents),
        value_range=parse_range(args.value_range),
        steps=args.steps,
        seed=args.seed,
        num_samples=args.num_samples,
        device=args.device,
    )
    print(f"wrote {path}")
    return 0
