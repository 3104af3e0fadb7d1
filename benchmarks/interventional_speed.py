"""Speed of the BetaVAE and FactorVAE scores: grid lookup vs naive per-draw encoding.

Encoder: disentanglement_lib's ``conv_encoder`` architecture (conv 32-32-64-64,
kernels 4-4-2-2, stride 2, 'same' padding; dense 256; 10 outputs), randomly
initialised (He normal, so that no code dimension is collapsed), in eval mode.  Dataset: untwine's procedural dSprites (737,280
images).  Metric settings: dlib's defaults (batch 64, 10000 train / 5000 eval
points, 10000 variance points, prune threshold 0.05), seed 0.

What is measured (see ``method`` in the JSON):

* ``counts``: the exact numbers of images each strategy encodes at the full
  defaults, from the real draws (``draw_*`` functions, seed 0): naive encodes
  every draw, lookup every distinct grid image once (per metric, and for both
  metrics sharing one ``CodeCache``), with the time the draws take.
* ``naive``: the real metric calls with ``strategy="naive"`` at a fraction of the
  points (``--fraction``), extrapolated linearly to the defaults (naive cost is
  linear in the number of points).
* ``lookup``: the real metric calls with ``strategy="lookup"`` at the same
  fraction (same seed, so the scores can be compared with naive), and, with
  ``--full``, at the full defaults.  Without ``--full`` the full-default lookup
  time is estimated as draw time + distinct images x measured per-image cost
  (render + encode) + the measured non-encoding overhead.

Usage: ``nice -n 10 python benchmarks/interventional_speed.py [--fraction 0.01]
[--threads 1] [--full]``; writes ``benchmarks/results/interventional_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from untwine.data import load
from untwine.metrics._encode_cache import CodeCache
from untwine.metrics.beta_vae import beta_vae_score, draw_beta_vae_points
from untwine.metrics.factor_vae import draw_factor_vae_votes, factor_vae_score

DEFAULTS = dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000)
METHOD = (
    "counts_at_defaults are exact (real draws at the full defaults, seed 0). naive_wall_s_* = per-image "
    "render+encode cost x the exact naive image count + the naive run's other overhead scaled linearly (naive "
    "cost is linear in the draws). lookup_wall_s_* = measured full-scale draw time + per-image cost x the exact "
    "distinct-image count + the reduced lookup run's other overhead. Both are estimates from runs at --fraction "
    "of the points, not full runs, unless measured_full_lookup_shared_cache is present. *_pooled uses one "
    "per-image cost pooled over the four measured runs; *_per_run each run's own wall time per image. The CPU "
    "was shared with other jobs (load average far above its 2 cores), so absolute times are pessimistic and "
    "noisy; the image counts and their ratio are the robust figures. Naive here batches about 1024 images per "
    "encoder call like lookup (dlib encodes 64 at a time, which is slower per image)."
)
RESULTS = Path(__file__).resolve().parent / "results" / "interventional_speed.json"


def conv_encoder(channels: int = 1, num_latent: int = 10) -> nn.Module:
    """disentanglement_lib's conv_encoder (means head), randomly initialised.

    He (Kaiming normal) initialisation, zero biases: with PyTorch's default
    initialisation every output of this untrained net has a standard deviation
    near 0.0006 on dSprites, so the FactorVAE score would prune every dimension
    and stop early; He initialisation keeps all 10 dimensions active (std 0.1-0.25).
    """
    net = nn.Sequential(
        nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),  # 64 -> 32 ('same')
        nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32 -> 16
        nn.Conv2d(32, 64, 2, stride=2), nn.ReLU(),  # 16 -> 8
        nn.Conv2d(64, 64, 2, stride=2), nn.ReLU(),  # 8 -> 4
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256), nn.ReLU(),
        nn.Linear(256, num_latent),
    )
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net


class Timed:
    """Encoder wrapper counting images and encoder seconds."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.images = 0
        self.seconds = 0.0

    def __call__(self, x):
        t = time.perf_counter()
        out = self.net(x)
        self.seconds += time.perf_counter() - t
        self.images += x.shape[0]
        return out

    def reset(self):
        self.images, self.seconds = 0, 0.0


def timed_render(ds):
    """Make ``ds.observations`` record its seconds in ``ds._render_s`` (instance patch)."""
    original = ds.observations
    ds._render_s = 0.0

    def observations(factors, *a, **k):
        t = time.perf_counter()
        out = original(factors, *a, **k)
        ds._render_s += time.perf_counter() - t
        return out

    ds.observations = observations
    return ds


def exact_counts(ds, seed: int) -> dict:
    """Images encoded by each strategy at the full defaults, from the real draws."""
    bs, nt, ne, nv = (DEFAULTS[k] for k in ("batch_size", "num_train", "num_eval", "num_variance_estimate"))
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    _, bi_tr = draw_beta_vae_points(ds, rng, nt, bs)
    _, bi_ev = draw_beta_vae_points(ds, rng, ne, bs)
    beta_draw_s = time.perf_counter() - t
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    fv = ds.index_of(ds.sample_factors(nv, rng))
    _, fi_tr = draw_factor_vae_votes(ds, rng, nt, bs)
    _, fi_ev = draw_factor_vae_votes(ds, rng, ne, bs)
    factor_draw_s = time.perf_counter() - t
    beta = np.concatenate([bi_tr.ravel(), bi_ev.ravel()])
    factor = np.concatenate([fv, fi_tr.ravel(), fi_ev.ravel()])
    return {
        "grid_size": int(ds.num_samples),
        "beta_vae": {"naive_images": int(beta.size), "lookup_images": int(np.unique(beta).size), "draw_s": beta_draw_s},
        "factor_vae": {
            "naive_images": int(factor.size),
            "lookup_images": int(np.unique(factor).size),
            "draw_s": factor_draw_s,
        },
        "both_shared_cache_lookup_images": int(np.unique(np.concatenate([beta, factor])).size),
        "both_naive_images": int(beta.size + factor.size),
    }


def run_metric(name, ds, enc, seed, strategy, scale, cache=None):
    kw = {k: max(2, int(round(v * scale))) for k, v in DEFAULTS.items() if k != "batch_size"}
    kw["batch_size"] = DEFAULTS["batch_size"]
    if name == "beta_vae":
        kw.pop("num_variance_estimate")
    enc.reset()
    ds._render_s = 0.0
    t = time.perf_counter()
    fn = beta_vae_score if name == "beta_vae" else factor_vae_score
    scores = fn(ds, enc, seed, strategy=strategy, cache=cache, **kw)
    wall = time.perf_counter() - t
    return {
        "settings": kw,
        "strategy": strategy,
        "scores": scores,
        "images_encoded": enc.images,
        "wall_s": wall,
        "encoder_s": enc.seconds,
        "render_s": ds._render_s,
        "other_s": wall - enc.seconds - ds._render_s,
    }


def summarize(counts: dict, measured: dict) -> dict:
    """Full-default estimates from the exact counts and the reduced measured runs.

    Two estimates: ``per_run`` uses each run's own per-image cost (noisy on a
    shared CPU), ``pooled`` one per-image render+encode cost pooled over all
    measured runs for both strategies, so its ratio reflects images encoded.
    """
    runs = measured.values()
    pooled_cost = sum(r["encoder_s"] + r["render_s"] for r in runs) / sum(r["images_encoded"] for r in runs)
    out = {"pooled_per_image_render_encode_s": pooled_cost}
    for name in ("beta_vae", "factor_vae"):
        nv, lk, c = measured[f"{name}_naive"], measured[f"{name}_lookup"], counts[name]
        naive_other = nv["other_s"] * c["naive_images"] / max(nv["images_encoded"], 1)
        naive_run = nv["wall_s"] * c["naive_images"] / max(nv["images_encoded"], 1)
        lookup_run = (
            c["draw_s"]
            + (lk["encoder_s"] + lk["render_s"]) / max(lk["images_encoded"], 1) * c["lookup_images"]
            + lk["other_s"]
        )
        naive_pooled = pooled_cost * c["naive_images"] + naive_other
        lookup_pooled = c["draw_s"] + pooled_cost * c["lookup_images"] + lk["other_s"]
        out[name] = {
            "naive_images": c["naive_images"],
            "lookup_images": c["lookup_images"],
            "naive_wall_s_pooled": naive_pooled,
            "lookup_wall_s_pooled": lookup_pooled,
            "speedup_pooled": naive_pooled / lookup_pooled,
            "naive_wall_s_per_run": naive_run,
            "lookup_wall_s_per_run": lookup_run,
            "speedup_per_run": naive_run / lookup_run,
        }
    naive_both = out["beta_vae"]["naive_wall_s_pooled"] + out["factor_vae"]["naive_wall_s_pooled"]
    lookup_both = (
        counts["beta_vae"]["draw_s"]
        + counts["factor_vae"]["draw_s"]
        + pooled_cost * counts["both_shared_cache_lookup_images"]
        + measured["beta_vae_lookup"]["other_s"]
        + measured["factor_vae_lookup"]["other_s"]
    )
    out["both_shared_cache"] = {
        "naive_images": counts["both_naive_images"],
        "lookup_images": counts["both_shared_cache_lookup_images"],
        "naive_wall_s_pooled": naive_both,
        "lookup_wall_s_pooled": lookup_both,
        "speedup_pooled": naive_both / lookup_both,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.01, help="fraction of the default points for measured runs")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="also run lookup at the full defaults (slow on a CPU)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = conv_encoder().eval().to(device)
    enc = Timed(net)
    ds = timed_render(load("dsprites"))
    ds.observations(ds.factors_of(np.arange(8)))  # build the sprite bank outside the timings

    counts = exact_counts(ds, args.seed)
    print("counts", json.dumps(counts))
    measured = {}
    for name in ("beta_vae", "factor_vae"):
        for strategy in ("naive", "lookup"):
            r = run_metric(name, ds, enc, args.seed, strategy, args.fraction)
            measured[f"{name}_{strategy}"] = r
            print(name, strategy, json.dumps(r))

    result = {
        "benchmark": "interventional_speed",
        "dataset": "dsprites (untwine procedural, 737,280 images)",
        "encoder": "dlib conv_encoder: conv32k4s2-conv32k4s2-conv64k2s2-conv64k2s2-fc256-fc10, random He init",
        "device": device,
        "torch_threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "defaults": DEFAULTS,
        "seed": args.seed,
        "counts_at_defaults": counts,
        "measured_at_fraction": {"fraction": args.fraction, "runs": measured},
    }

    result["at_defaults"] = summarize(counts, measured)

    if args.full:
        cache = CodeCache(ds, enc, device=device)
        full = {}
        for name in ("beta_vae", "factor_vae"):
            full[name] = run_metric(name, ds, enc, args.seed, "lookup", 1.0, cache=cache)
            print("full", name, json.dumps(full[name]))
        result["measured_full_lookup_shared_cache"] = full

    result["method"] = METHOD
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["at_defaults"], indent=2))


if __name__ == "__main__":
    main()
