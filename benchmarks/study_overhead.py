"""Benchmark: the overhead of running a study (12 runs on built-in dSprites, 2 worker processes).

    nice -n 10 python benchmarks/study_overhead.py [--steps 200] [--workers 2] [--out DIR]

The study: beta_vae (beta 1, 4) and beta_tcvae (beta 2, 6), three seeds each (12
runs), ``--steps`` training steps at batch 32 on CPU, a small evaluation (MIG, SAP,
Modularity, DCI, reconstruction on 1000/500 samples) and UDR on 500 points.

Reported (benchmarks/results/study_overhead.json):

* ``wall_seconds``: the whole ``run_study`` call (spawning workers, training,
  evaluating, recording) and ``udr_seconds`` for the UDR pass after it;
* per run: ``wall`` (inside the worker), ``train`` (the pure training loop, as the
  trainer measures it), ``eval`` (evaluation);
* ``overhead_per_run_seconds``: mean of (run wall - pure training time), i.e.
  evaluation plus setup (imports on a fresh worker, dataset, model build,
  checkpoints, database writes);
* ``setup_overhead_per_run_seconds``: the same without the evaluation;
* ``study_overhead_per_run_seconds``: (wall_seconds x workers - total training
  time) / runs: everything that is not training, including idle workers and
  process start-up, per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def study_file(folder: Path, steps: int) -> Path:
    data = {
        "name": "overhead",
        "datasets": ["dsprites"],
        "models": [
            {"name": "beta_vae", "hparams": {"beta": [1, 4]}},
            {"name": "beta_tcvae", "hparams": {"beta": [2, 6]}},
        ],
        "seeds": [0, 1, 2],
        "train": {"steps": steps, "batch_size": 32, "device": "cpu", "checkpoint_every": max(1, steps // 2)},
        "evaluation": {"metrics": ["mig", "sap", "modularity", "reconstruction"], "num_train": 500, "num_test": 250},
        "udr": {"num_points": 500},
        "retries": 1,
    }
    p = folder / "overhead.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="study directory (default: a temporary one, deleted afterwards)")
    ap.add_argument("--json", default=str(HERE / "results" / "study_overhead.json"))
    args = ap.parse_args(argv)

    from untwine.study.runner import available_cores, compute_study_udr, run_study
    from untwine.study.spec import expand, load_spec

    tmp = Path(tempfile.mkdtemp(prefix="untwine-study-bench-"))
    out = Path(args.out) if args.out else tmp / "study"
    try:
        spec = load_spec(study_file(tmp, args.steps))
        runs = expand(spec)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        res = run_study(spec, out, workers=args.workers, progress=True, udr=False)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        udr = compute_study_udr(spec, runs, out)
        udr_seconds = time.perf_counter() - t1
        load_after = os.getloadavg()
        per = []
        for rid, rep in sorted(res.reports.items()):
            per.append(
                {
                    "run_id": rid,
                    "ok": bool(rep.get("ok")),
                    "pid": rep.get("pid"),
                    "wall": round(float(rep.get("wall_seconds") or 0), 3),
                    "train": round(float(rep.get("train_seconds") or 0), 3),
                    "eval": round(float(rep.get("eval_seconds") or 0), 3),
                }
            )
        n = len(per)
        total_train = sum(p["train"] for p in per)
        overhead = [p["wall"] - p["train"] for p in per]
        setup = [p["wall"] - p["train"] - p["eval"] for p in per]
        result = {
            "benchmark": "study_overhead",
            "what": f"{n} runs (beta_vae x2, beta_tcvae x2, 3 seeds) on procedural dSprites, {args.steps} steps at batch 32, "
            f"{args.workers} worker processes, CPU",
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cores": available_cores(),
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in load_after],
            },
            "workers": args.workers,
            "steps": args.steps,
            "runs": n,
            "failed": res.failed,
            "wall_seconds": round(wall, 2),
            "udr_seconds": round(udr_seconds, 2),
            "total_train_seconds": round(total_train, 2),
            "mean_train_seconds": round(total_train / max(n, 1), 2),
            "mean_eval_seconds": round(sum(p["eval"] for p in per) / max(n, 1), 2),
            "overhead_per_run_seconds": round(sum(overhead) / max(n, 1), 2),
            "setup_overhead_per_run_seconds": round(sum(setup) / max(n, 1), 2),
            "setup_overhead_first_run_per_worker_seconds": round(
                sum(max(p["wall"] - p["train"] - p["eval"] for p in per if p["pid"] == pid) for pid in {p["pid"] for p in per})
                / max(len({p["pid"] for p in per}), 1),
                2,
            ),
            "study_overhead_per_run_seconds": round((wall * args.workers - total_train) / max(n, 1), 2),
            "udr": {k: round(v, 4) for k, v in udr.items()},
            "per_run": per,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        keys = ("wall_seconds", "udr_seconds", "mean_train_seconds", "mean_eval_seconds", "overhead_per_run_seconds",
                "setup_overhead_per_run_seconds", "setup_overhead_first_run_per_worker_seconds", "study_overhead_per_run_seconds")
        print(json.dumps({k: result[k] for k in keys}, indent=1))
        print(f"wrote {args.json}")
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
