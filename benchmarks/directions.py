"""Evidence for issue 16: every direction-finding method scored against ground truth, side by side.

Trains (or continues) three generators on built-in dSprites, seed 0: a VAE and a beta-TCVAE
(beta 6), Adam learning rate 5e-4 (the study's 1e-4 learns little in a CPU budget, as in
``benchmarks/model_comparison.py``), and a QLInfoWGAN-GP with the paper's settings; then runs
``untwine.directions.find_directions(run, "all", ...)`` on each: SeFa, GANSpace PCA, Voynov,
Householder, GradCtrl, potential flows and the two baselines, scored by the dSprites oracle
(trained once and cached).  Writes one JSON with, per generator and method, the scores
(DCI-style disentanglement / completeness, MIG-style gap, Hungarian alignment, mean effect),
the method's seconds, and the oracle's held-out accuracy.

    flock /tmp/untwine-cpu.lock python benchmarks/directions.py --threads 1

Runs already trained in ``--out`` are reused (continued when shorter).  The learnt methods
run with the reduced budgets below (``--train-steps`` scales them), far below their papers'
(10^5 steps on a GPU): their numbers here show they run and what a CPU budget buys, not
their best.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from untwine.directions.run import find_directions, format_table
from untwine.files import write_json
from untwine.train import train
from untwine.train.run import is_run_dir, open_run

#: (label, model, steps, hyper-parameters)
GENERATORS = [
    ("vae", "vae", 1000, {"learning_rate": 5e-4}),
    ("beta_tcvae_b6", "beta_tcvae", 1000, {"learning_rate": 5e-4, "beta": 6.0}),
    ("qlinfowgan_gp", "qlinfowgan_gp", 800, {}),
]


def method_options(scale: float) -> dict[str, dict]:
    def n(k):
        return max(3, round(k * scale))

    return {
        "voynov": {"steps": n(120), "batch_size": 16},
        "potential_flow": {"steps": n(60), "batch_size": 8, "timesteps": 6},
        "gradctrl": {"steps": n(500)},
        "householder": {},  # 1% of the run's steps, at least 20
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/untwine-directions-bench")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--num", type=int, default=5, help="directions per method (dSprites has 5 factors)")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiplies the generators' training steps")
    p.add_argument("--train-steps", type=float, default=1.0, help="multiplies the learnt methods' steps")
    p.add_argument("--seeds", type=int, default=32, help="latents traversed per direction when scoring")
    p.add_argument("--only", default="", help="comma-separated generator labels")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "directions.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results_path = Path(args.json)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results.update({
        "command": "flock /tmp/untwine-cpu.lock python benchmarks/directions.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("json", "out") and v not in ("", None)),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "dataset": args.dataset,
    })
    results.setdefault("generators", {})
    only = set(filter(None, args.only.split(",")))
    for label, model, steps, hp in GENERATORS:
        if only and label not in only:
            continue
        steps = max(1, round(steps * args.steps_scale))
        run_dir = out / label
        t0 = time.perf_counter()
        if not (is_run_dir(run_dir) and open_run(run_dir).step >= steps):
            train(model, args.dataset, steps=steps, out=run_dir, seed=0, set=hp,
                          resume=is_run_dir(run_dir), progress=False)
        train_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = find_directions(run_dir, "all", args.num, run_dir / "directions", seed=0, device="cpu",
                                 num_seeds=args.seeds, options=method_options(args.train_steps),
                                 log=lambda m: print(m, flush=True))
        print(f"== {label} ({model}, {steps} steps)\n{format_table(result)}", flush=True)
        results["generators"][label] = {
            "model": model, "steps": steps, "hparams": hp, "train_seconds_this_call": train_seconds,
            "directions_seconds": time.perf_counter() - t0, "oracle": result["oracle"], "prior": result["prior"],
            "methods": {name: {k: v for k, v in entry.items() if k != "effects"} | {"effects": entry.get("effects")}
                        for name, entry in result["methods"].items()},
        }
        results_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(results_path, results)
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
