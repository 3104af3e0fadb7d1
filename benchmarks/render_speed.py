"""Rendering speed of the procedural datasets and of the batch loader, on ONE CPU core.

Usage: python benchmarks/render_speed.py [--seconds 3] [--batch 256]
Writes benchmarks/results/render_speed.json.  Targets (issue 3): dSprites >= 20,000
images/s and shapes3d >= 2,000 images/s on one core.  "cold" includes the one-off
work done on first use (dSprites sprite windows; shapes3d ray casting of all 480
geometries); "images_per_s" is the steady state seen during training, per wall-clock
second and per CPU second of the (single-threaded) process -- on a shared machine the
latter is the figure that does not depend on the other load.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from untwine.data import load, make_loader


def images_per_second(dataset, batch: int, seconds: float, seed: int = 0) -> tuple[float, float]:
    """Images per wall-clock second and per CPU second of this process (one thread, so
    the latter does not depend on how busy the machine is)."""
    rng = np.random.default_rng(seed)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        dataset.observations(dataset.sample_factors(batch, rng))
        n += batch
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def loader_batches_per_second(dataset, batch: int, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    for _x, _f in make_loader(dataset, batch, seed=0):
        n += 1
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "render_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "datasets": {},
    }
    for name in ("dsprites", "color_dsprites", "noisy_dsprites", "shapes3d"):
        ds = load(name)
        t0, c0 = time.perf_counter(), time.process_time()
        if name == "shapes3d":  # ray cast every geometry once
            all_geo = np.stack(np.meshgrid(np.arange(8), np.arange(4), np.arange(15), indexing="ij"), -1).reshape(-1, 3)
            ds.observations(np.concatenate([np.zeros((len(all_geo), 3), np.int64), all_geo], 1))
        else:
            ds.observations(ds.sample_factors(1, np.random.default_rng(0)))
        setup, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
        warm, warm_cpu = images_per_second(ds, args.batch, args.seconds)
        bps = loader_batches_per_second(ds, args.batch, args.seconds)
        results["datasets"][name] = {
            "first_use_setup_s": round(setup, 3),
            "first_use_setup_cpu_s": round(setup_cpu, 3),
            "images_per_s": round(warm, 1),
            "images_per_cpu_s": round(warm_cpu, 1),
            "loader_batches_per_s": round(bps, 2),
            "loader_images_per_s": round(bps * args.batch, 1),
        }
        print(name, results["datasets"][name], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
