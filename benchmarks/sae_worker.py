"""One training run of ``benchmarks/sae_synthetic.py`` as a whole process (untwine's or SAELens's).

    python sae_worker.py untwine ARCH --data train.npy --out DIR --threads T --spec JSON
    python sae_worker.py saelens ARCH --data train.npy --out DIR --threads T --spec JSON

``JSON`` holds ``steps``, ``batch_size``, ``latents``, ``k``, ``lr``, ``seed`` and ``hparams``
(untwine's ``--set`` fields, or SAELens's config fields).  Both sides read the same array
and see the same batches in the same order (untwine's ``iter_batches``: SAELens's run
imports untwine from ``PYTHONPATH`` for that alone).  Prints one JSON line: the training
loop's seconds (untwine: ``training.json``'s ``seconds_this_session``; SAELens:
``trainer.fit()``) and the resolved learning rate.  SAELens saves its inference model,
which untwine loads to evaluate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def run_untwine(arch, data, out, spec):
    from untwine.sae import train_sae

    train_sae(data, arch=arch, latents=spec["latents"], k=spec.get("k"), steps=spec["steps"], batch_size=spec["batch_size"],
              lr=spec.get("lr"), seed=spec["seed"], out=out, device="cpu", progress=False, overwrite=True,
              hparams=spec.get("hparams") or {}, **spec.get("options", {}))
    info = json.loads((Path(out) / "training.json").read_text())
    return info["seconds_this_session"], info["lr"]


def saelens_sae(arch, d_in, spec):
    """SAELens's training SAE of ``arch`` with its own defaults but for ``k`` and ``hparams``."""
    hp = dict(spec.get("hparams") or {})
    common = {"d_in": d_in, "d_sae": spec["latents"], "device": "cpu"}
    if arch == "relu":
        from sae_lens.saes.standard_sae import StandardTrainingSAE as S, StandardTrainingSAEConfig as C
    elif arch == "topk":
        from sae_lens.saes.topk_sae import TopKTrainingSAE as S, TopKTrainingSAEConfig as C
        common["k"] = spec["k"]
    elif arch == "batchtopk":
        from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE as S, BatchTopKTrainingSAEConfig as C
        common["k"] = spec["k"]
    elif arch == "jumprelu":
        from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE as S, JumpReLUTrainingSAEConfig as C
    else:
        raise SystemExit(f"no SAELens counterpart for {arch}")
    return S(C(**common, **hp))


def run_saelens(arch, data, out, spec):
    import numpy as np
    import torch
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from untwine.sae.data import iter_batches, open_activations

    torch.manual_seed(spec["seed"])
    arr = np.load(data, mmap_mode="r")
    sae = saelens_sae(arch, arr.shape[1], spec)
    steps, batch, lr = spec["steps"], spec["batch_size"], spec["lr"]
    provider = (torch.from_numpy(b) for b in iter_batches(open_activations(data), batch, seed=spec["seed"]))
    tcfg = SAETrainerConfig(
        total_training_samples=steps * batch, train_batch_size_samples=batch, lr=lr, lr_end=lr,
        lr_scheduler_name="constant", device="cpu", logger=LoggingConfig(log_to_wandb=False),
        dead_feature_window=spec.get("dead_window", 1000), feature_sampling_window=2000,
    )
    trainer = SAETrainer(cfg=tcfg, sae=sae, data_provider=provider)
    t0 = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - t0
    sae.save_inference_model(str(out))
    return seconds, lr


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("side", choices=("untwine", "saelens"))
    ap.add_argument("arch")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--spec", required=True)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = json.loads(args.spec)
    run = run_untwine if args.side == "untwine" else run_saelens
    seconds, lr = run(args.arch, args.data, args.out, spec)
    print(json.dumps({"loop_s": seconds, "lr": lr}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
