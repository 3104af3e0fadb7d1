"""Held-out accuracy of ``factor_classifier`` on procedural dSprites and shapes3d.

Usage::

    OMP_NUM_THREADS=2 nice -n 10 python benchmarks/factor_classifier.py [--steps 2000] [--datasets dsprites,shapes3d]

For each dataset: ``untwine train factor_classifier --dataset NAME --steps STEPS`` (batch 64,
seed 0, the defaults) into ``runs/bench-factor_classifier-NAME`` (a finished run is reused,
keeping the training time first recorded; a larger ``--steps`` resumes it, and its entry adds the
earlier entry's training time), then ``untwine evaluate RUN --metrics accuracy
--num-train 1000 --num-test 10000`` (accuracy is scored on the held-out test rows only).
Writes ``benchmarks/results/factor_classifier.json``: per dataset and step count (``NAME@STEPS``) the accuracy of every
factor (``accuracy.<factor>``), their mean, chance level per factor, the share of the test rows
that some training batch also held (procedural test rows are fresh uniform draws of the grid) and
the accuracy on the test rows no batch held, steps, wall seconds of training and evaluation, and
the load average (the CPU may be shared).
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


def unseen_accuracy(run_dir, ds, num_test: int) -> dict:
    """The test rows ``untwine evaluate`` drew (seed 0) that no training batch held, and the accuracy
    on them: procedural test rows are fresh uniform draws, so some were seen in training."""
    import numpy as np
    import torch

    from untwine.train import load, open_run
    from untwine.train.trainer import batch_rng

    cfg = open_run(run_dir).config
    seen = np.concatenate([ds.index_of(ds.sample_factors(cfg.batch_size, batch_rng(cfg.seed, s)))
                           for s in range(cfg.steps)])
    test = ds.evaluation_rows(1000, num_test, np.random.default_rng(0)).test
    fresh = test[~np.isin(test, seen)]
    model = load(run_dir)
    with torch.no_grad():
        pred = np.concatenate([model.predict(ds.observations_at(fresh[i:i + 500])).numpy()
                               for i in range(0, fresh.size, 500)])
    acc = (pred == ds.factors_of(fresh)).mean(axis=0)
    return {"test_rows_seen_in_training": round(1 - fresh.size / test.size, 4),
            "accuracy_unseen_rows": {n: round(float(a), 4) for n, a in zip(ds.factor_names, acc)}}


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
    # entries are keyed "DATASET@STEPS": a run resumed to more steps keeps its earlier entry
    results["datasets"] = {(k if "@" in k else f"{k}@{v['steps']}"): v for k, v in results.get("datasets", {}).items()}
    command = (f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} nice -n 10 python "
               f"benchmarks/factor_classifier.py --steps {args.steps}")

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    for name in args.datasets.split(","):
        run_dir = Path(args.runs) / f"bench-factor_classifier-{name}"
        key = f"{name}@{args.steps}"
        entry = results["datasets"].get(key, {})
        at = open_run(run_dir).step if is_run_dir(run_dir) else 0
        if at > args.steps:
            print(f"{run_dir} is at step {at}, beyond {args.steps}: not evaluated", flush=True)
            continue
        if at < args.steps or "train_seconds" not in entry:
            before = results["datasets"].get(f"{name}@{at}", {}).get("train_seconds", 0.0) if at else 0.0
            t0 = time.perf_counter()
            run = untwine.train("factor_classifier", name, steps=args.steps, out=run_dir, resume=True, progress=True)
            entry = {"steps": args.steps, "batch_size": run.config.batch_size, "seed": run.config.seed,
                     "command": command, "resumed_from_step": at,
                     "train_seconds": round(before + time.perf_counter() - t0, 1),
                     "load_average_after_training": [round(v, 2) for v in os.getloadavg()]}
            results["datasets"][key] = entry
            save()  # the training time survives a failed evaluation
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
        entry.update(unseen_accuracy(run_dir, ds, args.num_test))
        results["datasets"][key] = entry
        save()
        print(key, json.dumps(entry["accuracy"]), flush=True)
    results.update(
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
    )
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
