"""Compare DCI's "fast" estimator with the reference "gbt" one (disentanglement_lib's).

Inputs: dSprites-like factors (3, 6, 40, 32, 32 classes), 10-D codes of five kinds:
aligned (each factor in one code plus tiny noise), noisy (factor codes + noise and
5 noise codes), mixed (random linear mix of all factors), partial (tanh of factors
through a near-identity mixing + noise), random (independent Gaussian noise); and
four kinds of redundant codes, several codes carrying one factor: duplicated (every
factor code twice), near_copies (twice, with independent noise of 1e-4, finer than
LightGBM's bins), redundant (every factor in two codes with independent noise of
0.02), redundant_mixed (two factors in three codes each: the code, a monotone
transform of it and a noisy copy; the other factors once; one noise code).
Usage: python benchmarks/dci_estimators.py [N_TRAIN N_TEST] [--reference-from OLD.json]
(default 2000 1000; the reference estimator takes minutes per input at 10000/5000;
``--reference-from`` reuses the "gbt" values of an earlier run at the same sizes, which
depend on the data only.)
Writes benchmarks/results/dci_estimators.json.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import numpy as np

from untwine.files import write_json
from untwine.metrics.dci import FAST_SETTINGS, dci

SIZES = (3, 6, 40, 32, 32)
KINDS = ("aligned", "noisy", "mixed", "partial", "random")
#: several codes carrying the same factor
REDUNDANT_KINDS = ("duplicated", "near_copies", "redundant", "redundant_mixed")


def make(kind: str, n: int, rng: np.random.Generator, d: int = 10):
    f = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    u = (f + rng.random(f.shape)) / np.array(SIZES) - 0.5
    if kind == "aligned":
        z = np.concatenate([u, 0.01 * rng.standard_normal((n, d - 5))], 1)
    elif kind == "noisy":
        z = np.concatenate([u + 0.05 * rng.standard_normal(u.shape), rng.standard_normal((n, d - 5))], 1)
    elif kind == "mixed":
        z = u @ np.random.default_rng(123).standard_normal((5, d)) + 0.02 * rng.standard_normal((n, d))
    elif kind == "partial":
        A = np.eye(5, d) + 0.3 * np.random.default_rng(321).standard_normal((5, d))
        z = np.tanh(2 * u) @ A + 0.05 * rng.standard_normal((n, d))
    elif kind == "duplicated":  # every factor in two identical codes
        z = np.concatenate([u, u], 1)
    elif kind == "near_copies":  # every factor in two codes differing by noise finer than LightGBM's bins
        z = np.concatenate([u + 1e-4 * rng.standard_normal(u.shape), u + 1e-4 * rng.standard_normal(u.shape)], 1)
    elif kind == "redundant":  # every factor in two codes with independent small noise
        z = np.concatenate([u + 0.02 * rng.standard_normal(u.shape), u + 0.02 * rng.standard_normal(u.shape)], 1)
    elif kind == "redundant_mixed":  # two factors in three codes each (one a monotone transform), the others in one
        z = np.concatenate(
            [u, np.tanh(2 * u[:, :2]), u[:, :2] + 0.02 * rng.standard_normal((n, 2)), rng.standard_normal((n, 1))], 1
        )
    else:
        z = rng.standard_normal((n, d))
    return z, f


def main() -> int:
    args = sys.argv[1:]
    reuse = None
    if "--reference-from" in args:  # the reference values depend on the data only, not on untwine
        at = args.index("--reference-from")
        prev = json.loads(pathlib.Path(args[at + 1]).read_text())
        del args[at : at + 2]
        reuse = {r["kind"]: r for r in prev["rows"]}
    n_train, n_test = (int(args[0]), int(args[1])) if len(args) > 1 else (2000, 1000)
    if reuse is not None and (prev["n_train"], prev["n_test"]) != (n_train, n_test):
        raise SystemExit("--reference-from: that run used other sample sizes")
    rows = []
    for i, kind in enumerate(KINDS + REDUNDANT_KINDS):
        rng = np.random.default_rng(100 + i)
        ztr, ftr = make(kind, n_train, rng)
        zte, fte = make(kind, n_test, rng)
        row = {"kind": kind}
        for est in ("fast", "gbt"):
            if est == "gbt" and reuse is not None and kind in reuse:
                row.update({k: reuse[kind][k] for k in ("gbt", "gbt_cpu_s", "gbt_wall_s")}, gbt_reused=True)
                continue
            t = time.process_time()
            w = time.perf_counter()
            row[est] = dci(ztr, ftr, zte, fte, estimator=est, seed=0)
            row[f"{est}_cpu_s"] = time.process_time() - t
            row[f"{est}_wall_s"] = time.perf_counter() - w
        row["abs_diff"] = {k: abs(row["fast"][k] - row["gbt"][k]) for k in row["fast"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {
        "n_train": n_train,
        "n_test": n_test,
        "factor_sizes": SIZES,
        "code_dim": 10,
        "fast_settings": FAST_SETTINGS,
        "max_abs_diff": max(max(r["abs_diff"].values()) for r in rows),
        "max_abs_diff_redundant": max(max(r["abs_diff"].values()) for r in rows if r["kind"] in REDUNDANT_KINDS),
        "rows": rows,
    }
    path = pathlib.Path(__file__).parent / "results" / "dci_estimators.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, out)
    print(f"max |fast - gbt| = {out['max_abs_diff']:.4f}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
