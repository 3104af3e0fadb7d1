"""Where the fast DCI estimator's time goes, and what the cheaper LightGBM settings would cost in
agreement with disentanglement_lib's GradientBoostingClassifier.

1. Cost per depth-3 class tree (CPU milliseconds, one thread) at several numbers of rows and
   codes, 40 classes, the fast estimator's settings: separates the fixed cost of a tree from
   its cost per row.
2. The fast estimator with its settings changed (fewer rounds at a larger rate, fewer bins,
   GOSS, bagging) on the metric benchmark's standard case (10000/5000 rows, 10-D codes,
   factors of 3, 6, 40, 32, 32 classes) against the "gbt" values of
   ``results/metrics_speed_reference.json``, and on the nine kinds of codes of
   ``dci_estimators.py`` (2000/1000 rows) against the "gbt" values of
   ``results/dci_estimators.json``; CPU seconds and the largest absolute difference to "gbt".

    python benchmarks/dci_floor.py            # writes benchmarks/results/dci_floor.json

CPU seconds (``time.process_time``, ``n_jobs=1``) are little affected by other work on the
machine; the load average is recorded beside them.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dci_estimators as cases  # noqa: E402

from untwine.examples import make_example_arrays  # noqa: E402
from untwine.files import write_json  # noqa: E402

dci_module = importlib.import_module("untwine.metrics.dci")

#: changes to the fast estimator's settings, tried one at a time
VARIANTS: dict[str, dict] = {
    "fast (as shipped)": {},
    "50 rounds, rate 0.2": {"num_iterations": 50, "learning_rate": 0.2},
    "255 bins": {"max_bin": 255},
    "127 bins": {"max_bin": 127},
    "GOSS (top 0.2, other 0.1)": {"data_sample_strategy": "goss", "top_rate": 0.2, "other_rate": 0.1},
    "bagging 0.5 per round": {"bagging_fraction": 0.5, "bagging_freq": 1},
}


def tree_cost() -> list[dict]:
    import lightgbm

    rng = np.random.default_rng(0)
    rows = []
    for n, d in [(10000, 10), (5000, 10), (2500, 10), (10000, 5), (10000, 2)]:
        x, y = rng.standard_normal((n, d)), rng.integers(0, 40, n)
        params = {**dci_module.FAST_SETTINGS, "boost_from_average": False, "num_threads": 1, "verbosity": -1,
                  "objective": "multiclass", "num_class": 40}
        params.pop("num_iterations")
        booster = lightgbm.Booster(params, lightgbm.Dataset(x, y, params=params))
        t = time.process_time()
        for _ in range(25):
            booster.update()
        rows.append({"rows": n, "codes": d, "ms_per_tree": round((time.process_time() - t) / (25 * 40) * 1e3, 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def standard_case():
    codes, factors = make_example_arrays(15000, seed=0)
    ref = json.loads((HERE / "results" / "metrics_speed_reference.json").read_text())["reference"]["values"]
    return (codes[:10000], factors[:10000], codes[10000:], factors[10000:]), ref


def kinds():
    ref = {r["kind"]: r["gbt"] for r in json.loads((HERE / "results" / "dci_estimators.json").read_text())["rows"]}
    for i, kind in enumerate(cases.KINDS + cases.REDUNDANT_KINDS):
        rng = np.random.default_rng(100 + i)  # the data of dci_estimators.py
        ztr, ftr = cases.make(kind, 2000, rng)
        zte, fte = cases.make(kind, 1000, rng)
        yield kind, (ztr, ftr, zte, fte), ref[kind]


def scored(arrays, ref) -> tuple[float, float]:
    t = time.process_time()
    got = dci_module.dci(*arrays, n_jobs=1)
    return time.process_time() - t, max(abs(got[k] - ref[k]) for k in got)


def main() -> int:
    shipped = dict(dci_module.FAST_SETTINGS)
    out = {"load_average_at_start": os.getloadavg(), "tree_cost": tree_cost(), "variants": []}
    std, std_ref = standard_case()
    try:
        for name, change in VARIANTS.items():
            dci_module.FAST_SETTINGS.clear()
            dci_module.FAST_SETTINGS.update({**shipped, **change})
            cpu, diff = scored(std, std_ref)
            per_kind = {kind: round(scored(arrays, ref)[1], 4) for kind, arrays, ref in kinds()}
            row = {"variant": name, "settings": change, "standard_case_cpu_s": round(cpu, 2),
                   "standard_case_max_abs_diff": round(diff, 4), "kinds_max_abs_diff": max(per_kind.values()),
                   "kinds": per_kind, "load_average": os.getloadavg()}
            out["variants"].append(row)
            print(json.dumps(row), flush=True)
    finally:
        dci_module.FAST_SETTINGS.clear()
        dci_module.FAST_SETTINGS.update(shipped)
    path = HERE / "results" / "dci_floor.json"
    write_json(path, out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
