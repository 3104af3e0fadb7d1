"""``untwine evaluate`` at disentanglement_lib's defaults: wall, user and system time, by phase.

Trains (or reuses) a beta-VAE run on built-in dSprites, then runs ``untwine evaluate RUN``
at the defaults (10000/5000 points, 10000/5000 interventional points of batch 64) in a
fresh process for each variant, measuring the process's wall, user and system seconds and
minor page faults (``resource.getrusage`` of the child), and reading the per-phase seconds
from ``evaluation.json``:

* ``float32``: the default;
* ``bfloat16``: ``--precision bfloat16`` (opt-in), with the largest score difference to
  float32;
* ``--src OTHER/src`` adds the same run under another checkout (e.g. the code before a
  change), for a before/after table.

    python benchmarks/evaluate_speed.py --run /tmp/untwine-evalspeed/run [--src /old/checkout/src]

Writes ``benchmarks/results/evaluate_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def timed(cmd: list[str], env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return {
        "wall_s": round(wall, 2),
        "user_s": round(after.ru_utime - before.ru_utime, 2),
        "system_s": round(after.ru_stime - before.ru_stime, 2),
        "minor_faults": int(after.ru_minflt - before.ru_minflt),
    }


def evaluate_cmd(target: Path, precision: str) -> list[str]:
    # --compare-representations: the work the command did by default before it became opt-in;
    # the same command for every checkout, so the times compare like for like
    return [sys.executable, "-m", "untwine", "evaluate", str(target), "--precision", precision, "--no-reference-scores",
            "--compare-representations"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="/tmp/untwine-evalspeed/run")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--src", action="append", default=[], help="another checkout's src to time as well (label: its path)")
    ap.add_argument("--variants", default="float32,bfloat16")
    ap.add_argument("--json", default=str(HERE / "results" / "evaluate_speed.json"))
    args = ap.parse_args()
    run = Path(args.run)
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONWARNINGS="ignore")
    if not (run / "checkpoints").is_dir():
        # trained by the oldest code given, which every newer version reads
        train_env = dict(env, PYTHONPATH=args.src[0]) if args.src else env
        subprocess.run([sys.executable, "-m", "untwine", "train", "beta_vae", "--dataset", "dsprites", "--steps",
                        str(args.steps), "--out", str(run), "--set", "learning_rate=5e-4", "--no-progress"],
                       env=train_env, check=True, capture_output=True)
    results: dict = {"run": str(run), "cpus": os.cpu_count(), "variants": {}}
    scores = {}
    for variant in args.variants.split(","):
        target = run.with_name(f"{run.name}-{variant}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("metrics.json", "evaluation.json"))
        res = timed(evaluate_cmd(target, variant), env)
        ev = json.loads((target / "evaluation.json").read_text())
        res["phases_s"] = ev.get("seconds")
        scores[variant] = json.loads((target / "metrics.json").read_text())
        results["variants"][variant] = res
        print(variant, res, flush=True)
    if "float32" in scores and "bfloat16" in scores:
        a, b = scores["float32"], scores["bfloat16"]
        diffs = {k: abs(a[k] - b[k]) for k in a if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float))
                 and not k.startswith(("reconstruction", "num_"))}
        results["bfloat16_max_abs_difference"] = max(diffs.values())
        results["bfloat16_differences"] = diffs
    for other in args.src:
        target = run.with_name(f"{run.name}-other")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("metrics.json", "evaluation.json"))
        res = timed(evaluate_cmd(target, "float32"), dict(env, PYTHONPATH=other))
        other_scores = json.loads((target / "metrics.json").read_text())
        same = {k: other_scores[k] == scores.get("float32", {}).get(k) for k in other_scores}
        res["commit"] = subprocess.run(["git", "-C", other, "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip() or None
        res["identical_scores"] = all(same.values())
        res["different_keys"] = [k for k, v in same.items() if not v]
        results.setdefault("other", {})[other] = res
        print(other, res, flush=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
