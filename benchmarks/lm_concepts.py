"""The whole concepts path on CPU: MiniLM activations of the concept corpus, a TopK SAE per
layer, the baselines, the edit test and representation health; writes JSON.

    python benchmarks/lm_concepts.py [--layers 0,3,6] [--latents 768] [--k 16] [--steps 2000]
                                     [--max-rows N] [--work DIR] [--out benchmarks/results/lm_concepts.json]
                                     [--html PATH] [--skip-sae]

Stages (each timed, seconds in ``stages``):

1. ``activations``: ``untwine.lm.activations.write_activations`` of every concept sentence
   (2,160) at the chosen layers, mean pooling, into ``--work`` (a temporary directory by default);
2. per layer, on a seeded 2:1 split of the sentences:
   * ``sae_train``: a TopK SAE (``untwine.sae.train_sae``) on the train rows, when
     ``untwine.sae`` is installed and ``--skip-sae`` is not given; its codes of every row;
   * ``scoring``: for each code set -- ``sae``, ``raw`` (the neurons), ``pca`` (as many
     components as SAE latents, at most the width), ``supervised`` (indicator codes of the
     supervised dictionary: the reference) and ``supervised_projection`` (its label-free
     codes) -- the disentanglement suite (``evaluate_arrays``, train/test), the test FVU
     of its reconstruction and k-sparse probing (k = 1, 2, 5); the edit test of the
     supervised dictionary judged by linear probes on the raw activations;
   * ``health``: ``health_report`` of the layer's activations;
3. ``embedding_health``: MiniLM's input token embeddings grouped by word frequency.

``--html`` writes the health page (one figure per measure across layers and frequency groups).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from untwine.files import atomic_write_text, write_json

HEADLINE = ("fvu", "mig", "dci_disentanglement", "dci_completeness", "sparse_probe_k1_mean", "sparse_probe_k5_mean")


def line(name, r):
    nan = float("nan")
    return (f"    {name:<22} latents {int(r['latents']):>4}  fvu {r.get('fvu', nan):.3f}  mig {r.get('mig', nan):.3f}  "
            f"dci_d {r.get('dci_disentanglement', nan):.3f}  k1 {r['sparse_probe_k1_mean']:.3f}  "
            f"k5 {r['sparse_probe_k5_mean']:.3f}  ({r['seconds']:.1f}s)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", default="0,3,6")
    p.add_argument("--latents", type=int, default=768)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="activation directory (default: a temporary one)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lm_concepts.json"))
    p.add_argument("--html", default=None, help="also write the health page here")
    p.add_argument("--skip-sae", action="store_true")
    args = p.parse_args(argv)
    layers = [int(s) for s in args.layers.split(",")]

    def log(msg):
        print(msg, flush=True)

    import torch

    from untwine.activations.shards import read_layer
    from untwine.concepts.baselines import concept_baselines, score_codes, split_rows
    from untwine.concepts.reconstruction import fvu
    from untwine.lm.activations import LanguageModel, write_activations
    from untwine.lm.layer_health import (
        embedding_health,
        frequency_groups,
        health_report_html,
    )
    from untwine.metrics.health import health_report

    sae_api = None
    if not args.skip_sae:
        try:
            import untwine.sae as sae_api
        except ImportError as exc:
            log(f"untwine.sae not available ({exc}); SAE stage skipped")

    stages: dict = {}
    result: dict = {
        "config": {**vars(args), "layers": layers, "torch_threads": torch.get_num_threads()},
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "stages": stages,
        "layers": {},
    }
    tmp = None
    work = Path(args.work) if args.work else Path(tmp := tempfile.mkdtemp(prefix="lm_concepts_"))
    t_all = time.perf_counter()

    t = time.perf_counter()
    lm = LanguageModel("minilm")
    stages["model_load"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = write_activations(work, model=lm, layers=layers, corpus="concepts", pool="mean",
                                max_rows=args.max_rows, seed=args.seed)
    stages["activations"] = time.perf_counter() - t
    log(f"activations: {summary['sentences']} sentences x {len(layers)} layers in {stages['activations']:.1f}s ({work})")
    result["corpus"] = {k: summary[k] for k in ("corpus", "sentences", "rows", "factor_names", "factor_sizes", "pool")}

    factors = np.load(work / "factors.npy")
    names = summary["factor_names"]
    sizes = summary["factor_sizes"]
    tr, te = split_rows(len(factors), args.seed)
    ftr, fte = factors[tr], factors[te]
    result["split"] = {"train": len(tr), "test": len(te), "seed": args.seed}

    for layer in layers:
        log(f"layer {layer}")
        x = read_layer(work / f"layer_{layer}").astype(np.float64)
        xtr, xte = x[tr], x[te]
        st: dict = {}
        res: dict = {"codes": {}}

        sae_codes = None
        if sae_api is not None:
            t = time.perf_counter()
            sae_dir = work / f"sae_layer_{layer}"
            sae_api.train_sae(xtr.astype(np.float32), arch="topk", latents=args.latents, k=args.k, out=sae_dir,
                              steps=args.steps, batch_size=args.batch_size, seed=args.seed, progress=False,
                              overwrite=True)
            sae_codes = np.asarray(sae_api.encode_file(sae_dir, x.astype(np.float32)), dtype=np.float64)
            sae = sae_api.load_sae(sae_dir)
            st["sae_train"] = time.perf_counter() - t
            res["sae"] = {"arch": "topk", "latents": args.latents, "k": args.k, "steps": args.steps,
                          "dead_fraction": float(((sae_codes[tr] > 0).sum(0) == 0).mean()),
                          "l0_test": float((sae_codes[te] > 0).sum(1).mean())}
            log(f"  sae_train {st['sae_train']:.1f}s, dead {res['sae']['dead_fraction']:.3f}, L0 {res['sae']['l0_test']:.1f}")

        t = time.perf_counter()
        if sae_codes is not None:
            with torch.no_grad():
                xhat = sae.decode(torch.from_numpy(sae_codes[te].astype(np.float32))).double().numpy()
            res["codes"]["sae"] = score_codes(sae_codes[tr], sae_codes[te], ftr, fte, fvu=fvu(xte, xhat),
                                              factor_names=names, seed=args.seed)
        base = concept_baselines(xtr, ftr, xte, fte, num_latents=args.latents, factor_names=names,
                                 factor_sizes=sizes, seed=args.seed)
        res["probe_accuracy"] = base.pop("probe_accuracy")
        res["edit"] = base.pop("edit")
        res["codes"].update(base)
        st["scoring"] = time.perf_counter() - t
        for name, r in res["codes"].items():
            log(line(name, r))
        log(f"  probes {res['probe_accuracy']}")
        log(f"  edit success {res['edit']['edit_success_mean']:.3f} (flip {res['edit']['edit_flip_mean']:.3f}, "
            f"keep {res['edit']['edit_keep_mean']:.3f})")

        t = time.perf_counter()
        res["health"] = health_report(x, seed=args.seed)
        st["health"] = time.perf_counter() - t
        res["stages"] = st
        result["layers"][str(layer)] = res
        write_json(args.out, result)  # partial results survive an interruption

    t = time.perf_counter()
    groups = frequency_groups(lm.tokenizer.get_vocab())
    result["embedding_health"] = embedding_health(lm.input_embeddings(), groups, seed=args.seed)
    stages["embedding_health"] = time.perf_counter() - t
    stages["total"] = time.perf_counter() - t_all
    write_json(args.out, result)
    log(f"wrote {args.out} ({stages['total']:.1f}s)")
    if args.html:
        layer_h = {int(k): v["health"] for k, v in result["layers"].items()}
        atomic_write_text(args.html, health_report_html(
            layer_h, result["embedding_health"], title="MiniLM representation health",
            note="Activations: mean-pooled all-MiniLM-L6-v2 hidden states of the concept corpus. "
                 "Embeddings: input token embeddings of whole-word vocabulary entries grouped by wordfreq Zipf value."))
        log(f"wrote {args.html}")
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
