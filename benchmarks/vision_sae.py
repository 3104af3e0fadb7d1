"""Which dictionary finds the factors inside a real vision network?

On procedural datasets whose factors are known (dSprites, shapes3d), for two networks trained
here (a beta-VAE encoder and the supervised ``factor_classifier``), at up to three layers each
(an early conv layer, the last conv layer and the penultimate dense layer, mean-pooled over
positions): every registered SAE architecture at a common budget and a matched L0 (``k`` for
the selecting architectures; ReLU and JumpReLU at their default sparsity, their L0 reported),
against the baselines on the same rows: raw neurons, PCA and ICA with as many components as
the layer has (capped at the SAE width) and the supervised dictionary.  Each code set gets
MIG, DCI-D, InfoM, k-sparse probing (k = 1 and 5, mean over factors) on a held-out third of
the rows, and each dictionary its test FVU, L0 and dead fraction.

    python benchmarks/vision_sae.py                 # the whole benchmark (~2 h on 2 cores)
    python benchmarks/vision_sae.py --quick         # ~10 min: dSprites, the beta-VAE, one layer, fewer steps

Work (trained networks, activations, SAEs) is kept under ``--work`` so a second run resumes;
results go to ``benchmarks/results/vision_sae.json`` (one row per dataset x network x layer x
code set) and a figure ``vision_sae.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "vision_sae.json"
SCORES = ("mig", "dci_disentanglement", "infom", "sparse_probe_k1_mean", "sparse_probe_k5_mean")


def pick_layers(layers: list[tuple[str, tuple[int, ...], str]], quick: bool) -> list[str]:
    """An early conv layer, the last conv layer and the penultimate dense layer of the encoder."""
    conv = [name for name, shape, _ in layers if len(shape) == 3 and name != "codes"]
    # the dense layers of the trunk (a model's output heads, e.g. the posterior's mean, are its code)
    dense = [name for name, shape, _ in layers if len(shape) == 1 and name != "codes" and "head" not in name]
    chosen = []
    if conv:
        chosen += [conv[min(1, len(conv) - 1)], conv[-1]]
    if len(dense) >= 2:
        chosen.append(dense[-2])
    elif dense:
        chosen.append(dense[-1])
    chosen = list(dict.fromkeys(chosen))
    return chosen[-1:] if quick else chosen


def train_network(model: str, dataset: str, steps: int, work: Path) -> Path:
    """A network trained ``steps`` steps under ``work`` (a run already there is continued or reused)."""
    from untwine.train.api import train
    from untwine.train.run import is_run_dir, open_run

    out = work / f"{model}-{dataset}"
    if not (is_run_dir(out) and open_run(out).step >= steps):
        train(model, dataset, steps=steps, out=out, batch_size=64, seed=0, resume=is_run_dir(out), set={"learning_rate": 1e-3})
    return out


def code_scores(ctr, cte, ftr, fte, names, seed=0) -> dict[str, float]:
    from untwine.concepts.probing import sparse_probing
    from untwine.metrics.suite import evaluate_arrays

    s = evaluate_arrays(ctr, ftr, cte, fte, metrics="mig,dci,infomec", seed=seed)
    s.update(sparse_probing(ctr, ftr, cte, fte, ks=(1, 5), factor_names=names, seed=seed))
    return {k: float(s[k]) for k in SCORES if k in s and s[k] is not None}


def baselines(x, f, tr, te, names, width: int) -> dict[str, dict]:
    from sklearn.decomposition import FastICA

    from untwine.concepts.pca import PCA
    from untwine.concepts.reconstruction import fvu
    from untwine.concepts.supervised_dictionary import SupervisedDictionary

    sizes = [int(m) + 1 for m in f.max(0)]
    out = {"raw neurons": {**code_scores(x[tr], x[te], f[tr], f[te], names), "fvu": 0.0, "latents": x.shape[1]}}
    n = min(width, x.shape[1])
    pca = PCA(n).fit(x[tr])
    out["pca"] = {**code_scores(pca.encode(x[tr]), pca.encode(x[te]), f[tr], f[te], names),
                  "fvu": float(fvu(x[te], pca.decode(pca.encode(x[te])))), "latents": n}
    sv = np.linalg.svd(x[tr] - x[tr].mean(0), compute_uv=False)
    rank = int((sv > 1e-6 * sv[0]).sum()) if sv.size and sv[0] > 0 else 1
    ica = FastICA(n_components=min(n, rank), random_state=0, max_iter=400, whiten="unit-variance").fit(x[tr])
    out["ica"] = {**code_scores(ica.transform(x[tr]), ica.transform(x[te]), f[tr], f[te], names),
                  "fvu": float(fvu(x[te], ica.inverse_transform(ica.transform(x[te])))), "latents": min(n, rank)}
    sd = SupervisedDictionary(sizes).fit(x[tr], f[tr])
    out["supervised dictionary"] = {**code_scores(sd.encode(x[tr]), sd.encode(x[te]), f[tr], f[te], names),
                                    "fvu": float(sd.fvu(x[te], f[te])), "latents": int(sum(sizes))}
    return out


def sae_rows(acts: Path, x, f, tr, te, names, *, width: int, k: int, steps: int, work: Path) -> dict[str, dict]:
    import torch

    from untwine.concepts.reconstruction import fvu
    from untwine.sae import ARCHITECTURES
    from untwine.sae.encode import load_usable_sae
    from untwine.sae.specs import sweep_specs
    from untwine.sae.train import train_saes

    archs = list(ARCHITECTURES)
    specs = sweep_specs(archs, [width], [k], {}, None)
    out_dir = work / "sae"
    t0 = time.perf_counter()
    dirs = train_saes(acts, specs, out=out_dir, steps=steps, batch_size=512, seed=0, device="cpu",
                      resume=(out_dir / "checkpoint.pt").exists(), progress=False)
    train_s = time.perf_counter() - t0
    rows = {}
    for spec, d in zip(specs, dirs):
        sae = load_usable_sae(d, torch.device("cpu"))
        with torch.no_grad():
            codes, x_hat = sae.reconstruct(torch.from_numpy(x.astype(np.float32)))
        c, xh = codes.double().numpy(), x_hat.double().numpy()
        rows[spec.arch] = {**code_scores(c[tr], c[te], f[tr], f[te], names),
                           "fvu": float(fvu(x[te], xh[te], undefined="nan")),
                           "l0": float((c[te] != 0).sum(1).mean()),
                           "dead_fraction": float((np.abs(c).max(0) == 0).mean()),
                           "latents": width, "train_seconds_all": train_s}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~10 minutes: dSprites, the beta-VAE, one layer, fewer steps")
    ap.add_argument("--work", default="/tmp/untwine-vision-sae", help="networks, activations and SAEs (kept: resumes)")
    ap.add_argument("--json", default=str(RESULTS))
    ap.add_argument("--rows", type=int, default=None, help="inputs per activation set (default 6000; --quick 3000)")
    ap.add_argument("--network-steps", type=int, default=None, help="training steps of the networks (default 4000; --quick 1500)")
    ap.add_argument("--datasets", help="comma list (default dsprites,shapes3d; --quick dsprites)")
    ap.add_argument("--networks", help="comma list (default beta_vae,factor_classifier; --quick beta_vae)")
    ap.add_argument("--all-layers", action="store_true", help="with --quick: the three layers, not only the dense one")
    ap.add_argument("--sae-steps", type=int, default=None, help="training steps of the SAEs (default 2000; --quick 600)")
    args = ap.parse_args()
    from untwine.activations.models import list_layers, write_model_activations
    from untwine.activations.reader import read_activations
    from untwine.concepts.baselines import split_rows
    from untwine.models import MODELS

    quick = args.quick
    datasets = args.datasets.split(",") if args.datasets else (["dsprites"] if quick else ["dsprites", "shapes3d"])
    nets = args.networks.split(",") if args.networks else (
        ["beta_vae"] if quick else ["beta_vae"] + (["factor_classifier"] if "factor_classifier" in MODELS else []))
    net_steps = args.network_steps or (1500 if quick else 4000)
    rows_n = args.rows or (3000 if quick else 6000)
    sae_steps = args.sae_steps or (600 if quick else 2000)
    width, k = 256, 8
    work = Path(args.work)
    results = {"datasets": datasets, "networks": nets, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()[0]},
               "settings": {"quick": quick, "network_steps": net_steps, "rows": rows_n, "sae_steps": sae_steps,
                            "sae_width": width, "k": k, "pool": "mean", "test_fraction": 1 / 3},
               "rows": []}
    t_all = time.perf_counter()
    for ds in datasets:
        for net in nets:
            run = train_network(net, ds, net_steps, work)
            layers = pick_layers(list_layers(run), quick and not args.all_layers)
            acts_dir = work / f"acts-{net}-{ds}"
            write_model_activations(acts_dir, run, layers=layers, rows=rows_n, pool="mean", chunk=1000, batch_size=500)
            f = np.load(acts_dir / "factors.npy")
            names = json.loads((acts_dir / "activations.json").read_text()).get("factor_names") or [str(i) for i in range(f.shape[1])]
            keep = [j for j in range(f.shape[1]) if len(np.unique(f[:, j])) > 1]
            f, names = f[:, keep], [names[j] for j in keep]
            tr, te = split_rows(len(f), 0)
            for layer in layers:
                layer_dir = acts_dir / f"layer_{layer}"
                x = np.asarray(read_activations(layer_dir), dtype=np.float64)
                print(f"{ds} {net} {layer}: {x.shape}", flush=True)
                found = baselines(x, f, tr, te, names, width)
                found.update(sae_rows(layer_dir, x, f, tr, te, names, width=width, k=k, steps=sae_steps,
                                      work=work / f"sae-{net}-{ds}-{layer}"))
                for code_set, scores in found.items():
                    results["rows"].append({"dataset": ds, "network": net, "layer": layer, "code_set": code_set,
                                            "input_dim": int(x.shape[1]), **scores})
                    print(f"  {code_set:22s} " + "  ".join(f"{k_}={scores[k_]:.3f}" for k_ in (*SCORES, "fvu")
                                                         if k_ in scores), flush=True)
    results["seconds"] = time.perf_counter() - t_all
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    figure(results, Path(args.json).with_suffix(".png"))
    print(f"wrote {args.json} ({results['seconds']:.0f} s)")


def figure(results, path: Path) -> None:
    """MIG and k=1 sparse probing of every code set, one panel per dataset x network x layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["dataset"], r["network"], r["layer"]) for r in results["rows"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, g in zip(axes[0], groups):
        rows = [r for r in results["rows"] if (r["dataset"], r["network"], r["layer"]) == g]
        y = np.arange(len(rows))
        ax.barh(y - 0.2, [r.get("mig", np.nan) for r in rows], 0.4, label="MIG")
        ax.barh(y + 0.2, [r.get("sparse_probe_k1_mean", np.nan) for r in rows], 0.4, label="1-sparse probe")
        ax.set_yticks(y, [r["code_set"] for r in rows], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(" / ".join(g), fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
