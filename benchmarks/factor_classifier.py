"""Held-out accuracy of ``factor_classifier`` on procedural dSprites and shapes3d.

Usage::

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/factor_classifier.py [--steps 2000] [--datasets dsprites,shapes3d]

For each dataset: ``untwine train factor_classifier --dataset NAME --steps STEPS`` (batch 64,
seed 0, the defaults) into ``runs/bench-factor_classifier-NAME`` (a finished run is reused,
keeping the training time first recorded), then ``untwine evaluate RUN --metrics accuracy
--num-train 1000 --num-test 10000`` (accuracy is scored on the held-out test rows only).
Writes ``benchmarks/results/factor_classifier.json``: per dataset the accuracy of every
factor (``accuracy.<factor>``), their mean, chance level per factor, steps, wall seconds of
training and evaluation, and the load average (the CPU may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "factor_classifier.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--datasets", default="dsprites,shapes3d")
    ap.add_argument("--runs", default="runs", help="folder of the run directories (default runs)")
    ap.add_argument("--num-test", type=int, default=10000)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    import torch

    import untwine
    from untwine.train.run import is_run_dir, open_run

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("datasets", {})
    for name in args.datasets.split(","):
        run_dir = Path(args.runs) / f"bench-factor_classifier-{name}"
        entry = results["datasets"].get(name, {})
        done = is_run_dir(run_dir) and open_run(run_dir).step >= args.steps
        if not done or entry.get("steps") != args.steps:
            t0 = time.perf_counter()
            run = untwine.train("factor_classifier", name, steps=args.steps, out=run_dir, resume=True, progress=True)
            entry = {"steps": args.steps, "batch_size": run.config.batch_size, "seed": run.config.seed,
                     "train_seconds": round(time.perf_counter() - t0, 1),
                     "train_loop_seconds": round(run.train_seconds or 0.0, 1),
                     "load_average_after_training": [round(v, 2) for v in os.getloadavg()]}
            results["datasets"][name] = entry
            out.write_text(json.dumps(results, indent=1) + "\n")  # the training time survives a failed evaluation
        t0 = time.perf_counter()
        scores = untwine.evaluate(run_dir, metrics="accuracy", num_train=1000, num_test=args.num_test,
                                  reference_scores=False)
        entry["evaluate_seconds"] = round(time.perf_counter() - t0, 1)
        entry["num_test"] = args.num_test
        entry["accuracy"] = {k.split(".", 1)[1]: round(v, 4) for k, v in scores.items() if k.startswith("accuracy.")}
        entry["accuracy_mean"] = round(scores["accuracy_mean"], 4)
        from untwine import data

        ds = data.load(name)
        entry["chance"] = {n: round(1 / s, 4) for n, s in zip(ds.factor_names, ds.factor_sizes)}
        results["datasets"][name] = entry
        print(name, json.dumps(entry["accuracy"]), flush=True)
    results.update(
        command=f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} nice -n 10 python benchmarks/factor_classifier.py "
                f"--steps {args.steps}",
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
