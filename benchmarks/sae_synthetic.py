"""Speed and quality of untwine's SAEs on synthetic activations with a known dictionary.

Built-in ground truth (``untwine.sae.synthetic``): 64 dimensions, 256 true features,
about 4 active per row (power-law frequencies).  Every architecture trains at the same
budget (``--steps`` steps of ``--batch-size`` rows, ``--latents`` latents, ``k`` for topk,
batchtopk, mp and codebook; top_afa chooses its own k per row, relu and jumprelu use their
default penalties), SAELens's TopK SAE trains on the same arrays in the same process (when
``sae-lens`` is installed: ``pip install -e .[sae-bench]``), and a sweep of several SAEs
(architectures x k x widths) trains once together (one pass over the data) and once one
after another.  Quality is measured on held-out rows by ``untwine.sae.evaluate_sae``
(SAELens's SAE is saved in its own format and loaded by untwine).  untwine's TopK runs
twice per repeat: with its defaults (a latent is dead after a sixteenth of the run, so AuxK
works from step 64) and with SAELens's dead-latent window of 1000 steps (so, like SAELens
here, it never has a dead latent to train with AuxK: the same work per step).  Writes
``benchmarks/results/sae_synthetic.json``.

    python benchmarks/sae_synthetic.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
QUALITY = ("fvu", "l0", "dead_fraction", "mmcs", "recovered", "mcc")
#: SAELens's dead-feature window (steps) in the baseline run
SAELENS_DEAD_WINDOW = 1000


def evaluate(d, held, syn_eval):
    from untwine.sae import evaluate_sae

    s = evaluate_sae(d, held, features=syn_eval.dictionary, true_codes=syn_eval.codes, device="cpu")
    return {k: round(float(s[k]), 4) for k in QUALITY}


def run_saelens(train, steps, batch, latents, k, lr, seed, out):
    """SAELens's TopK training SAE and trainer on the same array, same batch order as untwine's."""
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from untwine.sae.data import iter_batches, open_activations

    torch.manual_seed(seed)
    cfg = TopKTrainingSAEConfig(d_in=train.shape[1], d_sae=latents, k=k, device="cpu")
    sae = TopKTrainingSAE(cfg)
    batches = iter_batches(open_activations(train), batch, seed=seed)
    provider = (torch.from_numpy(b) for b in batches)
    tcfg = SAETrainerConfig(
        total_training_samples=steps * batch, train_batch_size_samples=batch, lr=lr, lr_end=lr,
        lr_scheduler_name="constant", device="cpu", logger=LoggingConfig(log_to_wandb=False),
        dead_feature_window=SAELENS_DEAD_WINDOW, feature_sampling_window=2000,
    )
    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=provider)
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    sae.save_inference_model(str(out))
    return seconds


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
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archs", default="topk,batchtopk,mp,top_afa,codebook,jumprelu,relu")
    ap.add_argument("--top-afa-k", type=int, default=None, help="cap on top_afa's active latents (default: none, the method as published)")
    ap.add_argument("--saelens-lr", type=float, default=3e-3)
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--repeats", type=int, default=1, help="SAELens TopK and untwine TopK, and the sweep one after another and together, run alternately this many times (median time)")
    ap.add_argument("--sweep-archs", default="topk,batchtopk")
    ap.add_argument("--sweep-k", default="2,4,8")
    ap.add_argument("--sweep-latents", default="256,512")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--sweep-only", action="store_true", help="run only the sweep and replace the sweep entry of --out")
    ap.add_argument("--out", default=str(ROOT / "results" / "sae_synthetic.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from untwine.sae import train_sae
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
    rows: list[dict] = []

    def record(name, seconds, d, extra=None):
        q = evaluate(d, held, syn_eval)
        row = {"sae": name, "seconds": round(seconds, 3), "rows_per_s": round(n_train / seconds), **q, **(extra or {})}
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.sweep_only:
        result = json.loads(Path(args.out).read_text())
        result["sweep"] = run_sweep(args, train, held, syn_eval, tmp)
        result["sweep"]["command"] = "python " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0

    def untwine_one(arch, out, **options):
        # top_afa picks k per row (its point; --top-afa-k caps it); the others use --k where they have one
        from untwine.sae import get_architecture

        k = args.top_afa_k if arch == "top_afa" else args.k if "k" in get_architecture(arch).hparam_defaults else None
        train_sae(train, arch=arch, latents=args.latents, k=k, steps=args.steps, batch_size=args.batch_size,
                  seed=args.seed, out=out, device="cpu", progress=False, overwrite=True, **options)
        info = json.loads((out / "training.json").read_text())
        return info["seconds_this_session"], info["lr"]

    have = False
    if not args.no_saelens:
        try:
            import sae_lens  # noqa: F401

            have = True
        except ImportError:
            print("sae-lens not installed: skipping the SAELens baseline", flush=True)
    times = {"saelens_topk": [], "untwine_topk": [], "untwine_topk_saelens_dead": []}
    # SAELens's run counts a latent dead after SAELENS_DEAD_WINDOW steps without firing (its
    # AuxK loss stays 0 until then); untwine's default is a sixteenth of the run.  The third
    # contender is untwine's TopK with SAELens's definition: the same work per step.
    saelens_dead_rows = SAELENS_DEAD_WINDOW * args.batch_size
    for r in range(max(1, args.repeats)):
        # alternate, so that a change in the machine's load hits both alike
        if have:
            times["saelens_topk"].append(
                run_saelens(train, args.steps, args.batch_size, args.latents, args.k, args.saelens_lr, args.seed, tmp / "saelens")
            )
            print(f"saelens topk run {r + 1}: {times['saelens_topk'][-1]:.2f} s", flush=True)
        secs, topk_lr = untwine_one("topk", tmp / "untwine-topk")
        times["untwine_topk"].append(secs)
        print(f"untwine topk run {r + 1}: {secs:.2f} s", flush=True)
        secs, _ = untwine_one("topk", tmp / "untwine-topk-saelens-dead", dead_rows=saelens_dead_rows)
        times["untwine_topk_saelens_dead"].append(secs)
        print(f"untwine topk (SAELens's dead-latent window) run {r + 1}: {secs:.2f} s", flush=True)
    if have:
        record("saelens_topk", float(np.median(times["saelens_topk"])), tmp / "saelens",
               {"lr": args.saelens_lr, "runs_s": [round(t, 2) for t in times["saelens_topk"]]})
    record("untwine_topk", float(np.median(times["untwine_topk"])), tmp / "untwine-topk",
           {"lr": topk_lr, "runs_s": [round(t, 2) for t in times["untwine_topk"]]})
    dead_times = times["untwine_topk_saelens_dead"]
    record("untwine_topk_saelens_dead", float(np.median(dead_times)), tmp / "untwine-topk-saelens-dead",
           {"lr": topk_lr, "dead_rows": saelens_dead_rows, "runs_s": [round(t, 2) for t in dead_times]})

    for arch in [a for a in args.archs.split(",") if a and a != "topk"]:
        secs, lr = untwine_one(arch, tmp / f"untwine-{arch}")
        record(f"untwine_{arch}", secs, tmp / f"untwine-{arch}", {"lr": lr})

    sweep = None if args.no_sweep else run_sweep(args, train, held, syn_eval, tmp)

    base = next((r for r in rows if r["sae"] == "saelens_topk"), None)
    if base:
        for r in rows:
            r["speed_vs_saelens"] = round(r["rows_per_s"] / base["rows_per_s"], 2)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "latents": args.latents, "k": args.k,
                   "features": args.features, "dim": args.dim, "eval_rows": args.eval_rows},
        "note": "seconds: the training loop only (SAELens: trainer.fit()); quality on held-out rows",
        "rows": rows,
        "sweep": sweep,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
