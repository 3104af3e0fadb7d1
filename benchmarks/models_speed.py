"""Training speed of every untwine model: steps/s at batch 64 on the 64x64 convolutional architecture.

Usage: ``python benchmarks/models_speed.py [--threads 2] [--steps 30] [--batch 64] [--device cpu]``;
writes ``benchmarks/results/models_speed.json``.  Each model gets 3 warm-up steps,
then ``--steps`` timed ``training_step`` calls on random binary 64x64 blobs
(dSprites-like, Bernoulli reconstruction).  The load average is recorded because
the CPU may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from untwine.models import MODELS, build_model
from untwine.models.classifier import CLASSIFIER_MODELS
from untwine.models.dts import SEQUENCE_MODELS

#: the unsupervised image models (the sequence models have their own benchmark, timeseries.py; the
#: supervised classifier, trained on labels, benchmarks/factor_classifier.py)
IMAGE_MODELS = [name for name in MODELS if name not in SEQUENCE_MODELS and name not in CLASSIFIER_MODELS]


def blobs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 64, 64)
    for i in range(n):
        s = int(torch.randint(8, 24, (1,), generator=g))
        r, c = (int(v) for v in torch.randint(0, 64 - s, (2,), generator=g))
        x[i, 0, r : r + s, c : c + s] = 1.0
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default=",".join(IMAGE_MODELS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "models_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x = blobs(args.batch).to(device)
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, (1, 64, 64), binary=True, num_factors=5).to(device)
        opts = model.make_optimizers()
        for s in range(3):
            model.training_step(x, s, opts)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(args.steps):
            model.training_step(x, s, opts)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        results[name] = {"steps_per_s": args.steps / wall, "cpu_s_per_step": cpu / args.steps}
        print(f"{name:14s} {args.steps / wall:7.2f} steps/s   cpu {cpu / args.steps:.3f} s/step   load {os.getloadavg()[0]:.1f}", flush=True)
    out = {
        "benchmark": "models_speed",
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
