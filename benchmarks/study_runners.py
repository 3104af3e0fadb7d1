"""Several runners on one study: wall time of one ``untwine study run`` against two at once.

Runs the same small study (``--runs`` runs of ``--steps`` steps on dSprites) twice into
fresh directories: once with one runner process, once with ``--runners`` processes started
together on the same study directory (each with one torch thread).  Reports both wall
times, their ratio, and how many times each run was attempted (every run must be trained
exactly once).  Writes ``benchmarks/results/study_runners.json``.

    python benchmarks/study_runners.py --steps 300 --runs 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def study_file(path: Path, steps: int, runs: int) -> None:
    seeds = list(range(runs // 2))
    path.write_text(
        "name: runners\ndatasets: [dsprites]\nmodels: [vae, beta_vae]\n"
        f"seeds: {seeds}\n"
        f"train: {{steps: {steps}, batch_size: 32, device: cpu, num_latents: 6, checkpoint_every: {max(1, steps // 3)}}}\n"
        "evaluation: {metrics: [mig, reconstruction], num_train: 500, num_test: 200, reference_scores: false}\n"
        "udr: {enabled: false}\n"
    )


def run_once(spec: Path, out: Path, runners: int) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "untwine", "study", "run", str(spec), "--out", str(out), "--no-progress", "--threads", "1"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(runners)]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit("a runner failed:\n" + "\n".join(errs))
    sys.path.insert(0, str(HERE.parent / "src"))
    from untwine.study import results as db

    conn = db.connect(out / "results.sqlite")
    try:
        rows = db.run_rows(conn)
    finally:
        conn.close()
    return wall, {rid: {"status": r["status"], "attempts": r["attempts"]} for rid, r in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--runners", type=int, default=2)
    ap.add_argument("--json", default=str(HERE / "results" / "study_runners.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="untwine-runners-"))
    try:
        spec = work / "study.yaml"
        study_file(spec, args.steps, args.runs)
        one, rows_one = run_once(spec, work / "one", 1)
        many, rows_many = run_once(spec, work / "many", args.runners)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "steps": args.steps, "runs": args.runs, "runners": args.runners, "cpus": os.cpu_count(),
        "one_runner_s": round(one, 1), "several_runners_s": round(many, 1), "ratio": round(many / one, 3),
        "attempts_one": sorted(r["attempts"] for r in rows_one.values()),
        "attempts_several": sorted(r["attempts"] for r in rows_many.values()),
        "all_done": all(r["status"] == "done" for r in rows_many.values()),
    }
    print(result)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
