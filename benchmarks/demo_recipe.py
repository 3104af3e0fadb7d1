"""Choose the demo's recipe by measurement: which model, hyper-parameters and step count make
``bash scripts/demo.sh`` show a model that visibly disentangles within its CPU budget.

Each candidate is trained on built-in dSprites for each seed with ``untwine train`` and scored
with ``untwine evaluate`` at the demo's evaluation settings (4000 train / 2000 test samples),
in fresh processes, exactly as the demo runs them.  Recorded per run: MIG, DCI
disentanglement, the training's wall and CPU time, and the machine's load average beside
them; per candidate: the medians over the seeds.

    python benchmarks/demo_recipe.py                       # every candidate, seeds 0 1 2
    python benchmarks/demo_recipe.py --only tcvae_b6_lr1e-3_1500 --seeds 0
    python benchmarks/demo_recipe.py --out /tmp/recipes    # run folders (resumable: done runs are kept)

Writes ``benchmarks/results/demo_recipe.json`` (``--json`` to write elsewhere).  Runs that
already have their scores in ``--out`` are not trained again, so an interrupted search
continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo_recipe.json"

#: the demo's evaluation settings (scripts/demo.sh)
EVAL = ["--num-train", "4000", "--num-test", "2000", "--metrics", "mig,dci"]

#: name -> (model, steps, batch size, hyper-parameters)
CANDIDATES: dict[str, tuple[str, int, int, dict[str, float | int]]] = {
    "beta_vae_b4_lr5e-4_1000": ("beta_vae", 1000, 64, {"beta": 4, "learning_rate": 5e-4}),  # the old demo
    "tcvae_b6_lr1e-3_1500": ("beta_tcvae", 1500, 64, {"beta": 6, "learning_rate": 1e-3}),
    "tcvae_b10_lr1e-3_1500": ("beta_tcvae", 1500, 64, {"beta": 10, "learning_rate": 1e-3}),
    "tcvae_b6_lr2e-3_1500": ("beta_tcvae", 1500, 64, {"beta": 6, "learning_rate": 2e-3}),
    "tcvae_b6_lr1e-3_1500_z6": ("beta_tcvae", 1500, 64, {"beta": 6, "learning_rate": 1e-3, "num_latents": 6}),
    "tcvae_b6_lr1e-3_2000": ("beta_tcvae", 2000, 64, {"beta": 6, "learning_rate": 1e-3}),
    "tcvae_b16_lr1e-3_1500": ("beta_tcvae", 1500, 64, {"beta": 16, "learning_rate": 1e-3}),
    "tcvae_b10_lr2e-3_1500": ("beta_tcvae", 1500, 64, {"beta": 10, "learning_rate": 2e-3}),
    "tcvae_b10_lr1e-3_3000": ("beta_tcvae", 3000, 64, {"beta": 10, "learning_rate": 1e-3}),
}


def _run(argv: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``python -m untwine *argv``; returns the process, its wall time and its CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "untwine", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        raise SystemExit(f"untwine {' '.join(argv)} failed:\n{p.stderr}")
    return p, wall, cpu


def run_one(name: str, seed: int, out: Path) -> dict:
    model, steps, batch, hparams = CANDIDATES[name]
    run_dir = out / f"{name}-seed{seed}"
    done = run_dir / "recipe_scores.json"
    if done.is_file():
        return json.loads(done.read_text())
    sets = []
    for k, v in hparams.items():
        sets += ["--set", f"{k}={v}"]
    load_before = os.getloadavg()[0]
    _, train_wall, train_cpu = _run(["train", model, "--dataset", "dsprites", "--steps", str(steps),
                                     "--batch-size", str(batch), "--seed", str(seed), "--out", str(run_dir),
                                     "--device", "cpu", "--no-progress", "--overwrite", *sets])
    _, eval_wall, eval_cpu = _run(["evaluate", str(run_dir), *EVAL, "--no-reference-scores", "--device", "cpu"])
    scores = json.loads((run_dir / "metrics.json").read_text())
    flat = scores.get("scores", scores)
    result = {"candidate": name, "seed": seed, "mig": flat["mig"], "dci_disentanglement": flat["dci_disentanglement"],
              "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1),
              "eval_wall_s": round(eval_wall, 1), "load_before": round(load_before, 2),
              "load_after": round(os.getloadavg()[0], 2)}
    done.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma list of candidate names (default all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="/tmp/untwine-demo-recipe", help="run folders (kept: the search resumes)")
    ap.add_argument("--json", default=str(RESULTS))
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = Path(args.json)
    data = json.loads(path.read_text()) if path.is_file() else {"runs": [], "candidates": {}}
    for name in names:
        for seed in args.seeds:
            r = run_one(name, seed, out)
            print(f"{name:32s} seed {seed}: MIG {r['mig']:.3f}  DCI-D {r['dci_disentanglement']:.3f}  "
                  f"train {r['train_wall_s']:.0f} s wall / {r['train_cpu_s']:.0f} s CPU (load {r['load_before']})",
                  flush=True)
            data["runs"] = [x for x in data["runs"] if (x["candidate"], x["seed"]) != (name, seed)] + [r]
        runs = [x for x in data["runs"] if x["candidate"] == name]
        model, steps, batch, hparams = CANDIDATES[name]
        data["candidates"][name] = {
            "model": model, "steps": steps, "batch_size": batch, "hparams": hparams,
            "seeds": sorted(x["seed"] for x in runs),
            "median_mig": statistics.median(x["mig"] for x in runs),
            "median_dci_disentanglement": statistics.median(x["dci_disentanglement"] for x in runs),
            "median_train_wall_s": statistics.median(x["train_wall_s"] for x in runs),
            "median_train_cpu_s": statistics.median(x["train_cpu_s"] for x in runs),
        }
        data["evaluation"] = EVAL
        data["machine"] = {"cpus": os.cpu_count()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
