"""Benchmark: DTS vs beta-TCVAE vs VAE on time series (issue 7).

* ``sines`` (built in, full factor grid): each model trained for ``--steps`` steps
  (batch 64, same seeds, CPU), then MIG, DCI disentanglement and InfoM from
  :func:`untwine.train.evaluate_run` on 2000 train / 1000 test series.
* real UCR/UEA series (``--series-dir``: aeon's bundled ``datasets/data`` folder, or
  aeon installed): each model trained on the train split for ``--series-steps`` steps,
  posterior means probed with :func:`untwine.metrics.probes.probe_scores` (logistic
  regression and 1-NN, the dataset's own train/test split) next to the raw-series and
  PCA (same dimension) baselines.

Run (nice'd, about 10-15 minutes on 2 busy cores)::

    nice -n 10 python benchmarks/timeseries.py --series-dir /path/to/aeon/datasets/data

Writes ``benchmarks/results/timeseries.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import untwine.models
from untwine.data.series import aeon_data_dir, load_series
from untwine.data.sines import Sines
from untwine.metrics.probes import probe_baselines, probe_scores
from untwine.models.dts import SEQUENCE_MODELS
from untwine.train import evaluate_run, train

MODELS = {
    "seq_vae": {},
    "seq_beta_tcvae": {"beta": 6.0},
    "dts": {"alpha": 0.0, "beta": 6.0, "gamma": 2.0, "groups": "", "group_beta": 0.0},
    "dts_groups": {"alpha": 0.0, "beta": 6.0, "gamma": 2.0, "groups": "4,3,3", "group_beta": 2.0},
}


def model_name(key: str) -> str:
    return "dts" if key.startswith("dts") else key


def summarize(result: dict) -> dict:
    """Mean over seeds per model: sines metrics and, per data set, probe accuracies (with the baselines)."""
    out: dict = {"sines": {}, "series": {}}
    for key in MODELS:
        rows = [r for r in result["sines"] if r["model"] == key]
        if rows:
            out["sines"][key] = {m: float(np.mean([r[m] for r in rows])) for m in ("mig", "dci_disentanglement", "infom")}
            out["sines"][key]["seeds"] = len(rows)
    for e in result["series"]:
        table = {"raw": e["raw"], "pca10": e["pca10"]}
        for key in MODELS:
            rows = [r for r in e["models"] if r["model"] == key]
            if rows:
                table[key] = {m: float(np.mean([r[m] for r in rows])) for m in ("linear_probe_accuracy", "knn_accuracy")}
        out["series"][e["dataset"]] = table
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--series-steps", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--series-dir", default=None)
    ap.add_argument("--datasets", nargs="+", default=["GunPoint", "ArrowHead", "ItalyPowerDemand", "BasicMotions"])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "timeseries.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    untwine.models.MODELS.update(SEQUENCE_MODELS)
    result = {
        "settings": {**vars(args), "models": MODELS, "latents": 10, "batch_size": 64, "device": "cpu",
                     "torch": torch.__version__, "python": platform.python_version()},
        "sines": [], "series": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        result["summary"] = summarize(result)
        out.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        sines = Sines()
        for seed in args.seeds:
            for key, hp in MODELS.items():
                t = time.perf_counter()
                run = train(model_name(key), sines, steps=args.steps, out=Path(tmp) / f"{key}-{seed}", seed=seed, device="cpu", hparams=hp)
                secs = time.perf_counter() - t
                s = evaluate_run(run.path, metrics="mig,dci,infomec", num_train=2000, num_test=1000, seed=seed, device="cpu",
                                 dataset=sines, write=False)
                log = run.log()
                row = {"model": key, "seed": seed, "train_seconds": round(secs, 1),
                       "mig": s["mig"], "dci_disentanglement": s["dci_disentanglement"], "infom": s["infom"],
                       "dci_informativeness_test": s["dci_informativeness_test"],
                       "final_reconstruction": float(np.mean(log["reconstruction"][-10:])), "final_kl": float(np.mean(log["kl"][-10:]))}
                print(row, flush=True)
                result["sines"].append(row)
                save()
        data_dir = args.series_dir or aeon_data_dir()
        if data_dir is None:
            result["series_skipped"] = "no aeon data folder (install aeon or pass --series-dir)"
        else:
            for name in args.datasets:
                d = load_series(name, data_dir=data_dir)
                base = probe_baselines(d.X_train, d.y_train, d.X_test, d.y_test, num_components=10)
                entry = {"dataset": name, "train": int(d.X_train.shape[0]), "test": int(d.X_test.shape[0]),
                         "shape": list(d.observation_shape), "classes": d.num_classes,
                         "raw": base["raw"], "pca10": base["pca"], "models": []}
                for seed in args.seeds:
                    for key, hp in MODELS.items():
                        run = train(model_name(key), d.ground_truth("train"), steps=args.series_steps,
                                    out=Path(tmp) / f"{name}-{key}-{seed}", seed=seed, device="cpu", hparams=hp)
                        with torch.no_grad():
                            ca = run.model.encode(torch.from_numpy(d.X_train)).numpy()
                            cb = run.model.encode(torch.from_numpy(d.X_test)).numpy()
                        entry["models"].append({"model": key, "seed": seed, **probe_scores(ca, d.y_train, cb, d.y_test)})
                        print(name, entry["models"][-1], flush=True)
                result["series"].append(entry)
                save()
    save()


if __name__ == "__main__":
    main()
