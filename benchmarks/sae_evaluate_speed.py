"""``untwine sae evaluate`` on the README's synthetic example: wall and CPU seconds, machine load.

Writes the example if missing (``untwine sae synthetic --features 256 --dim 64 --samples 100000
--hierarchy 8``, ``untwine sae train ... --arch topk --latents 512 --k 4 --steps 1024
--batch-size 1024``), then times, each as a fresh ``nice -n 10`` process,

    untwine sae evaluate SAE syn/acts.npy --features syn/features.npy --factors syn/factors.npy --json OUT

under this checkout's ``src`` and any ``--src OTHER/src`` (e.g. the code before a change),
recording wall, user and system seconds (``resource.getrusage`` of the child), the load
average before and after (``os.getloadavg``), the per-phase lines the command prints and the
suite's sample size.  Other work on the machine shows in the load: compare CPU seconds.

    python benchmarks/sae_evaluate_speed.py [--dir /tmp/untwine-saeeval] [--src /old/src] [--extra ARGS]

Writes ``benchmarks/results/sae_evaluate_speed.json``.
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


def untwine(args: list[str]) -> list[str]:
    return ["nice", "-n", "10", sys.executable, "-m", "untwine", *args]


def timed(cmd: list[str], env: dict) -> dict:
    load0 = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "wall_s": round(wall, 1), "user_s": round(user, 1), "system_s": round(system, 1),
        "cpu_s": round(user + system, 1), "load_before": [round(v, 2) for v in load0],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "phase_lines": [line for line in p.stderr.splitlines() if line.startswith("sae evaluate: ")],
        "warnings": [line for line in p.stderr.splitlines() if line.startswith("warning: ")],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/untwine-saeeval")
    ap.add_argument("--src", action="append", default=[], help="another checkout's src to time as well")
    ap.add_argument("--extra", default="", help="extra arguments for sae evaluate (e.g. '--suite-rows 0')")
    ap.add_argument("--json", "--out", dest="json", default=str(HERE / "results" / "sae_evaluate_speed.json"))
    args = ap.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(SRC), PYTHONWARNINGS="ignore")
    syn, sae = root / "syn", root / "sae"
    if not (syn / "factors.npy").is_file():
        subprocess.run(untwine(["sae", "synthetic", "--features", "256", "--dim", "64", "--samples", "100000",
                                "--hierarchy", "8", "--out", str(syn)]), env=env, check=True, capture_output=True)
    if not (sae / "cfg.json").is_file():
        subprocess.run(untwine(["sae", "train", str(syn / "acts.npy"), "--arch", "topk", "--latents", "512", "--k", "4",
                                "--steps", "1024", "--batch-size", "1024", "--out", str(sae)]),
                       env=env, check=True, capture_output=True)
    results: dict = {"dir": str(root), "cpus": os.cpu_count(), "runs": {}}
    for src in [str(SRC), *args.src]:
        target = root / f"sae-{len(results['runs'])}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(sae, target, ignore=shutil.ignore_patterns("evaluation.json"))
        out = root / f"scores-{len(results['runs'])}.json"
        cmd = untwine(["sae", "evaluate", str(target), str(syn / "acts.npy"), "--features", str(syn / "features.npy"),
                       "--factors", str(syn / "factors.npy"), "--json", str(out), *args.extra.split()])
        run = timed(cmd, dict(env, PYTHONPATH=src))
        flat = json.loads(out.read_text())
        run["suite_rows"] = [flat.get("suite_train_rows"), flat.get("suite_test_rows")]
        run["command"] = " ".join(cmd[3:])
        results["runs"][src] = run
        print(src, {k: run[k] for k in ("wall_s", "cpu_s", "load_before", "suite_rows")}, flush=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
