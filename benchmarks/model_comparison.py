"""Evidence for issue 4: the VAE family and QLAE on built-in dSprites, same budget and seed.

Trains each model with ``untwine.train`` for ``--steps`` steps (batch 64, seed 0),
evaluates it with ``untwine.evaluate`` (MIG, DCI, InfoMEC and reconstruction on
freshly drawn train/test samples) and writes one JSON with, per model, the
scores, the training wall time and steps/s.

    python benchmarks/model_comparison.py --steps 5000 --out /tmp/untwine-bench

Runs that already finished in ``--out`` are not trained again, and shorter ones are
continued (``resume``, bit-identical to an uninterrupted run), so an interrupted
benchmark continues where it stopped. Several processes (``--only`` with disjoint
labels) may write to the same ``--json``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import time
from pathlib import Path

import torch

import untwine
from untwine.train.run import is_run_dir, open_run

#: (label, model name, hyper-parameters)
MODELS = [
    ("ae", "ae", {}),
    ("vae", "vae", {}),
    ("beta_vae_b4", "beta_vae", {"beta": 4.0}),
    ("beta_vae_b16", "beta_vae", {"beta": 16.0}),
    ("beta_tcvae_b6", "beta_tcvae", {"beta": 6.0}),
    ("factor_vae", "factor_vae", {}),
    ("dip_vae_i", "dip_vae_i", {}),
    ("qlae", "qlae", {}),
]
KEYS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "infom", "infoe", "infoc", "reconstruction")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dataset", default="dsprites")
    p.add_argument("--num-train", type=int, default=10000)
    p.add_argument("--num-test", type=int, default=5000)
    p.add_argument("--only", default="", help="comma-separated labels to run")
    p.add_argument("--vae-lr", type=float, default=5e-4,
                   help="Adam learning rate of the VAE family and AE (the study's 1e-4 learns little in a CPU budget); QLAE keeps its own 1e-3")
    p.add_argument("--out", default="/tmp/untwine-bench")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "model_comparison.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results_path = Path(args.json)
    settings = {
        "dataset": args.dataset,
        "vae_learning_rate": args.vae_lr,
        "steps": args.steps,
        "batch_size": 64,
        "seed": args.seed,
        "torch_threads": args.threads,
        "eval": {"num_train": args.num_train, "num_test": args.num_test, "metrics": "mig,dci,infomec,reconstruction"},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, device cpu",
        "command": "python benchmarks/model_comparison.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v != ""),
    }
    only = {s for s in args.only.split(",") if s}
    for label, name, hp in MODELS:
        if only and label not in only:
            continue
        run_dir = out / label
        start = open_run(run_dir).step if is_run_dir(run_dir) else 0
        t0 = time.perf_counter()
        if start < args.steps:
            lr = {} if name == "qlae" else {"learning_rate": args.vae_lr}
            untwine.train(name, args.dataset, steps=args.steps, out=run_dir, seed=args.seed, device="cpu",
                          hparams={**hp, **lr}, resume=start > 0, progress=False)
        train_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        scores = untwine.evaluate(run_dir, metrics="mig,dci,infomec,reconstruction", num_train=args.num_train,
                                  num_test=args.num_test, seed=args.seed, device="cpu")
        entry = {"model": name, "hparams": hp, **{k: scores.get(k) for k in KEYS}, "eval_seconds": time.perf_counter() - t1}
        if start < args.steps:
            # resuming is bit-identical, so a run continued from `start` equals an uninterrupted one;
            # its speed is measured over the steps trained in this invocation only
            entry.update(train_seconds=train_s, timed_steps=args.steps - start, resumed_from_step=start,
                         steps_per_second=(args.steps - start) / train_s)
        record(results_path, label, entry, settings)
        print(label, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()}), flush=True)


def record(path: Path, label: str, entry: dict, settings: dict) -> None:
    """Add one model's entry to the results JSON; several benchmark processes may share the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {}
        previous = results.get("settings", {})
        if previous.get("steps") != settings["steps"]:
            results, previous = {"models": {}}, {}  # a different budget: start a fresh table
        old = results["models"].get(label, {})
        results["models"][label] = {**{k: v for k, v in old.items() if "second" in k or "step" in k}, **entry}
        results["settings"] = {**settings, "commands": sorted({*previous.get("commands", []), settings["command"]})}
        del results["settings"]["command"]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(path)


if __name__ == "__main__":
    main()
