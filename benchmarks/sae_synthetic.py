"""Speed and quality of untwine's SAEs against SAELens's on synthetic activations with a known dictionary.

Built-in ground truth (``untwine.sae.synthetic``): 64 dimensions, 256 true features,
about 4 active per row (power-law frequencies).  For each architecture with a SAELens
counterpart (relu = SAELens's standard, topk, batchtopk, jumprelu), untwine and SAELens
each train as a *separate whole process* (``benchmarks/sae_worker.py``: untwine under this
Python, SAELens under ``--saelens-python``, a venv with ``sae-lens``), alternating,
``--repeats`` times, on the same array in the same batch order, the same budget
(``--steps`` x ``--batch-size`` rows, ``--latents`` latents, ``--k``) and the same
learning rate (untwine's default for the architecture; SAELens's schedule constant), each
with its own defaults otherwise (SAELens's ``l1_coefficient`` 1, ``l0_coefficient`` 1,
JumpReLU bandwidth 0.05 and initial threshold 0.01; untwine's penalties are set with
``--relu-l1`` / ``--jumprelu-l0`` to compare at equal sparsity).  Reported per side:
median process seconds and training-loop seconds, rows/s of both, the load average
beside every run, and quality on held-out rows by ``untwine.sae.evaluate_sae`` (SAELens's
SAE saved in its own format and loaded by untwine).  mp, top_afa and codebook (no SAELens
counterpart) run the same way and are compared with untwine's TopK.  untwine's TopK also
runs with SAELens's dead-latent window of 1000 steps (``topk_saelens_dead``: like SAELens
here it then never trains AuxK, the same work per step).  A sweep of several SAEs
(architectures x k x widths) trains once together and once one after another (in this
process; ``--no-sweep`` skips it).  Writes ``benchmarks/results/sae_synthetic.json``.

    python benchmarks/sae_synthetic.py --threads 2 --repeats 3 --archs relu,topk,batchtopk,jumprelu --no-sweep
    python benchmarks/sae_synthetic.py --quick          # a small smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
SRC = ROOT.parent / "src"
WORKER = ROOT / "sae_worker.py"
QUALITY = ("fvu", "l0", "dead_fraction", "mmcs", "recovered", "mcc")
#: SAELens's dead-feature window (steps) in the baseline runs
SAELENS_DEAD_WINDOW = 1000
#: architectures SAELens has (untwine's name -> SAELens's)
SAELENS_NAMES = {"relu": "standard", "topk": "topk", "batchtopk": "batchtopk", "jumprelu": "jumprelu"}
DEFAULT_SAELENS_PYTHON = "/work/saelens-venv/bin/python"


def evaluate(d, held, syn_eval):
    from untwine.sae import evaluate_sae

    s = evaluate_sae(d, held, features=syn_eval.dictionary, true_codes=syn_eval.codes, device="cpu")
    return {k: round(float(s[k]), 4) for k in QUALITY}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_process(python, side, arch, data, out, spec, threads) -> dict:
    """One whole training process; its wall seconds, loop seconds and the load around it."""
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    cmd = [python, str(WORKER), side, arch, "--data", str(data), "--out", str(out), "--threads", str(threads),
           "--spec", json.dumps(spec)]
    before = load()
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{side} {arch} failed:\n{done.stderr[-3000:]}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    return {"process_s": wall, "loop_s": res["loop_s"], "lr": res["lr"], "load_before": before, "load_after": load()}


def summarize(runs: list[dict], n_train: int) -> dict:
    proc = float(np.median([r["process_s"] for r in runs]))
    loop = float(np.median([r["loop_s"] for r in runs]))
    return {"process_s": round(proc, 3), "loop_s": round(loop, 3), "rows_per_s_loop": round(n_train / loop),
            "rows_per_s_process": round(n_train / proc), "lr": runs[0]["lr"],
            "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "lr"} for r in runs]}


def ratios(mine: dict, base: dict) -> dict:
    return {"loop": round(base["loop_s"] / mine["loop_s"], 2), "process": round(base["process_s"] / mine["process_s"], 2)}


def run_sweep(args, train, held, syn_eval, tmp) -> dict:
    """The sweep (architectures x k x widths) one after another, then together in one pass."""
    from untwine.sae import train_sae, train_saes
    from untwine.sae.specs import sweep_specs

    specs = sweep_specs(args.sweep_archs.split(","), [int(v) for v in args.sweep_latents.split(",")],
                        [int(v) for v in args.sweep_k.split(",")], {}, None)
    seq, tog = [], []
    for _ in range(max(1, args.repeats)):  # alternate, so that a change in the machine's load hits both alike
        t = time.perf_counter()
        for s in specs:
            train_sae(train, arch=s.arch, latents=s.latents, hparams=s.hparams, steps=args.steps, batch_size=args.batch_size,
                      seed=args.seed, out=tmp / "seq" / s.label(), device="cpu", progress=False, overwrite=True)
        seq.append(time.perf_counter() - t)
        t = time.perf_counter()
        dirs = train_saes(train, specs, out=tmp / "together", steps=args.steps, batch_size=args.batch_size,
                          seed=args.seed, device="cpu", progress=False, overwrite=True)
        tog.append(time.perf_counter() - t)
    seq_s, tog_s = float(np.median(seq)), float(np.median(tog))
    rows = [{"sae": s.label(), **evaluate(d, held, syn_eval)} for s, d in zip(specs, dirs)]
    sweep = {"saes": len(specs), "one_after_another_s": round(seq_s, 2), "together_s": round(tog_s, 2),
             "speedup": round(seq_s / tog_s, 2), "runs_one_after_another_s": [round(v, 2) for v in seq],
             "runs_together_s": [round(v, 2) for v in tog], "quality_together": rows}
    print(json.dumps({k: v for k, v in sweep.items() if k != "quality_together"}), flush=True)
    return sweep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--latents", type=int, default=512)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--eval-rows", type=int, default=65536)
    ap.add_argument("--threads", type=int, default=0, help="torch threads of every process (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archs", default="relu,topk,batchtopk,jumprelu,mp,top_afa,codebook")
    ap.add_argument("--top-afa-k", type=int, default=None, help="cap on top_afa's active latents (default: none, the method as published)")
    ap.add_argument("--relu-l1", type=float, default=None, help="untwine relu's l1_coefficient (default: untwine's)")
    ap.add_argument("--jumprelu-l0", type=float, default=None, help="untwine jumprelu's l0_coefficient (default: untwine's)")
    ap.add_argument("--saelens-python", default=DEFAULT_SAELENS_PYTHON, help="a Python with sae-lens installed")
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="untwine and SAELens alternate this many times per architecture (median)")
    ap.add_argument("--sweep-archs", default="topk,batchtopk")
    ap.add_argument("--sweep-k", default="2,4,8")
    ap.add_argument("--sweep-latents", default="256,512")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-only", action="store_true", help="run only the sweep and replace the sweep entry of --out")
    ap.add_argument("--quick", action="store_true", help="smoke test: 128 steps x 256 rows, 8192 held-out rows, 1 repeat, no sweep")
    ap.add_argument("--out", default=None, help="JSON written (default: results/sae_synthetic.json; --quick: a temporary file)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.batch_size, args.eval_rows, args.repeats, args.no_sweep = 128, 256, 8192, 1, True
    if args.out is None:
        args.out = str(Path(tempfile.gettempdir()) / "sae_synthetic_quick.json") if args.quick else str(ROOT / "results" / "sae_synthetic.json")
    if args.threads:
        torch.set_num_threads(args.threads)

    from untwine.sae import get_architecture
    from untwine.sae.synthetic import make_synthetic

    n_train = args.steps * args.batch_size
    t = time.perf_counter()
    syn = make_synthetic(args.features, args.dim, n_train + args.eval_rows, active=4.0, seed=args.seed)
    gen_s = time.perf_counter() - t
    train = syn.acts[:n_train]
    held = syn.acts[n_train:]
    syn_eval = type(syn)(held, syn.dictionary, syn.codes[n_train:], syn.probabilities)
    print(f"synthetic: {syn.acts.shape[0]} rows x {args.dim} dims, {args.features} features, "
          f"{syn.codes.nnz / syn.acts.shape[0]:.2f} active per row ({gen_s:.1f} s)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="sae-bench-"))
    data = tmp / "train.npy"
    np.save(data, np.ascontiguousarray(train))

    if args.sweep_only:
        result = json.loads(Path(args.out).read_text())
        result["sweep"] = run_sweep(args, train, held, syn_eval, tmp)
        result["sweep"]["command"] = "python " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0

    have = not args.no_saelens and Path(args.saelens_python).exists()
    if not args.no_saelens and not have:
        print(f"{args.saelens_python} not found: skipping the SAELens baselines", flush=True)
    archs = [a for a in args.archs.split(",") if a]
    if "topk" in archs:  # untwine's TopK with SAELens's dead-latent window right after it
        archs.insert(archs.index("topk") + 1, "topk_saelens_dead")
    base = {"steps": args.steps, "batch_size": args.batch_size, "latents": args.latents, "seed": args.seed}
    rows: list[dict] = []
    by_arch: dict[str, dict] = {}
    for name in archs:
        arch = "topk" if name == "topk_saelens_dead" else name
        hp, options = {}, {}
        if arch == "relu" and args.relu_l1 is not None:
            hp["l1_coefficient"] = args.relu_l1
        if arch == "jumprelu" and args.jumprelu_l0 is not None:
            hp["l0_coefficient"] = args.jumprelu_l0
        if name == "topk_saelens_dead":
            options["dead_rows"] = SAELENS_DEAD_WINDOW * args.batch_size
        k = args.top_afa_k if arch == "top_afa" else args.k if "k" in get_architecture(arch).hparam_defaults else None
        spec = {**base, "k": k, "hparams": hp, "options": options}
        with_saelens = have and name in SAELENS_NAMES
        mine, theirs = [], []
        for r in range(max(1, args.repeats)):  # alternate, so that a change in the machine's load hits both alike
            mine.append(run_process(sys.executable, "untwine", arch, data, tmp / f"untwine-{name}", spec, args.threads))
            print(f"untwine {name} run {r + 1}: {json.dumps(mine[-1])}", flush=True)
            if with_saelens:
                sl_spec = {**base, "k": args.k, "lr": mine[0]["lr"], "dead_window": SAELENS_DEAD_WINDOW}
                theirs.append(run_process(args.saelens_python, "saelens", arch, data, tmp / f"saelens-{name}", sl_spec, args.threads))
                print(f"saelens {name} run {r + 1}: {json.dumps(theirs[-1])}", flush=True)
        row = {"arch": name, "untwine": {**summarize(mine, n_train), "hparams": hp, "options": options,
                                         **evaluate(tmp / f"untwine-{name}", held, syn_eval)}}
        if with_saelens:
            row["saelens"] = {"architecture": SAELENS_NAMES[name], **summarize(theirs, n_train),
                              **evaluate(tmp / f"saelens-{name}", held, syn_eval)}
            row["speed_vs_saelens"] = ratios(row["untwine"], row["saelens"])
        elif "topk" in by_arch and arch != "topk":
            row["speed_vs_untwine_topk"] = ratios(row["untwine"], by_arch["topk"]["untwine"])
        by_arch[name] = row
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items()}), flush=True)

    sweep = None if args.no_sweep else run_sweep(args, train, held, syn_eval, tmp)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": {"cpu_threads": args.threads or torch.get_num_threads(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "torch": torch.__version__},
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "latents": args.latents, "k": args.k,
                   "features": args.features, "dim": args.dim, "eval_rows": args.eval_rows, "repeats": args.repeats},
        "note": ("each run a whole process (benchmarks/sae_worker.py); process_s: its wall seconds, loop_s: the training "
                 "loop (SAELens: trainer.fit()); medians over repeats, untwine and SAELens alternating; load: "
                 "os.getloadavg() before and after each run; speed ratios: other's seconds / untwine's; quality on held-out rows"),
        "rows": rows,
        "sweep": sweep,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
