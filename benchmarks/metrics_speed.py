"""Speed of untwine's array metric suite against straightforward per-pair reference loops.

Data: the generated example of :mod:`untwine.examples` (dSprites-like factors
with 3, 6, 40, 32 and 32 classes, 10-D codes), 10000 train / 5000 test rows.
Times every metric of the default suite (``untwine.metrics.suite.evaluate_arrays``)
and, in the same run, the per-pair scikit-learn implementation of the reference
algorithms in ``_reference_impl.py`` (disentanglement_lib's loops; InfoMEC as in
the latent-quantization paper's code).  Writes timings, the speed-up and both
sets of values with their absolute differences to
``benchmarks/results/metrics_speed.json`` and lists every key where the two
disagree beyond tolerance (1e-6 for deterministic metrics, 0.02 for
classifier/estimator-based ones, 0.05 for DCI whose default estimator differs
from the reference trees by design).

    nice -n 10 python benchmarks/metrics_speed.py            # full run (~5-10 min, reference DCI dominates)
    python benchmarks/metrics_speed.py --quick               # small smoke run
    python benchmarks/metrics_speed.py --no-reference        # untwine timings only
    python benchmarks/metrics_speed.py --no-reference --process 3 --baseline-src OLD/src --out /tmp/m.json

``--process R`` also times the whole ``untwine score`` command (start-up included: a fresh
``python -m untwine score`` on the same arrays saved as .npy files) R times, with its wall
time, its user and system CPU time (which a loaded machine inflates far less than wall
time) and the load average before each run; ``--baseline-src DIR`` times another source
tree (e.g. an older checkout's ``src``) alternately in the same run, so ratios compare
like with like.  Every result records ``os.getloadavg()`` beside its numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _reference_impl import run_reference  # noqa: E402

from untwine.examples import EXAMPLE_FACTOR_SIZES, make_example_arrays  # noqa: E402
from untwine.metrics.suite import ARRAY_METRICS, METRIC_KEYS, evaluate_arrays  # noqa: E402

DETERMINISTIC = {
    "mig",
    "modularity",
    "irs",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
}


def tolerance(key: str) -> float:
    if key in DETERMINISTIC:
        return 1e-6
    if key.startswith("dci_"):
        return 0.05
    return 0.02


def time_process(src: Path, files: list[Path], repeats: int) -> list[dict]:
    """Run ``python -m untwine score`` from source tree ``src`` on ``files`` ``repeats`` times."""
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, "-m", "untwine", "score", str(files[0]), str(files[1]),
           "--test-codes", str(files[2]), "--test-factors", str(files[3])]
    runs = []
    for _ in range(repeats):
        load = list(os.getloadavg())
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs.append({"wall_s": wall, "user_s": after.ru_utime - before.ru_utime,
                     "sys_s": after.ru_stime - before.ru_stime, "load_average_before": load})
    return runs


def process_timings(arrays, repeats: int, baseline: Path | None) -> dict:
    """Whole-command timings of this tree (and of ``baseline`` alternately, when given)."""
    trees = {"untwine": HERE.parent / "src"}
    if baseline is not None:
        trees["baseline"] = baseline.resolve()
    out = {name: {"src": str(path), "runs": []} for name, path in trees.items()}
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"{n}.npy" for n in ("codes", "factors", "test_codes", "test_factors")]
        for f, a in zip(files, arrays):
            np.save(f, a)
        for name, path in trees.items():  # warm the file cache and the byte-code of both trees
            time_process(path, files, 1)
        for _ in range(repeats):
            for name, path in trees.items():
                out[name]["runs"] += time_process(path, files, 1)
    for name, res in out.items():
        for key in ("wall_s", "user_s", "sys_s"):
            res[f"median_{key}"] = float(np.median([r[key] for r in res["runs"]]))
        print(f"process {name}: median {res['median_wall_s']:.2f}s wall, {res['median_user_s']:.2f}s user, "
              f"{res['median_sys_s']:.2f}s sys ({repeats} runs)", flush=True)
    if baseline is not None:
        out["ratio_baseline_over_untwine"] = {
            k: out["baseline"][f"median_{k}"] / out["untwine"][f"median_{k}"] for k in ("wall_s", "user_s")
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (600 train / 300 test)")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true", help="time untwine only")
    ap.add_argument("--repeats", type=int, default=1, help="untwine suite repetitions (best time is reported)")
    ap.add_argument(
        "--reference-from",
        type=Path,
        default=None,
        help="reuse the reference timings and values of an earlier run with the same configuration "
        "(the *_reference.json it leaves next to its output)",
    )
    ap.add_argument("--out", type=Path, default=None, help="output JSON (default results/metrics_speed[_quick].json)")
    ap.add_argument("--process", type=int, default=0, metavar="R",
                    help="also time the whole `untwine score` command R times (start-up included)")
    ap.add_argument("--baseline-src", type=Path, default=None, metavar="DIR",
                    help="with --process: also time the source tree DIR, alternating with this one")
    args = ap.parse_args(argv)

    n_train = args.n_train or (600 if args.quick else 10000)
    n_test = args.n_test or (300 if args.quick else 5000)
    out = args.out or HERE / "results" / ("metrics_speed_quick.json" if args.quick else "metrics_speed.json")

    codes, factors = make_example_arrays(n=n_train + n_test, seed=args.seed)
    ctr, ftr, cte, fte = codes[:n_train], factors[:n_train], codes[n_train:], factors[n_train:]

    import sklearn
    import torch

    config = {
        "n_train": n_train,
        "n_test": n_test,
        "num_latents": int(codes.shape[1]),
        "factor_sizes": list(EXAMPLE_FACTOR_SIZES),
        "seed": args.seed,
        "dci_estimator": "fast",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }

    reference = None
    if args.reference_from is not None:
        prev = json.loads(args.reference_from.read_text())
        keys = ("n_train", "n_test", "seed", "factor_sizes")
        if any(prev["config"].get(k) != v for k, v in zip(keys, (n_train, n_test, args.seed, list(EXAMPLE_FACTOR_SIZES)))):
            raise SystemExit(f"{args.reference_from}: reference was run with another configuration")
        reference = dict(prev["reference"], reused_from=str(args.reference_from))
    elif not args.no_reference:
        # the reference runs first: it is slow and independent of untwine's code
        r_scores, r_timings, r_cpu = {}, {}, {}
        for name in ARRAY_METRICS:
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vals = run_reference(name, ctr, ftr, cte, fte, seed=args.seed)
            r_timings[name] = time.perf_counter() - t0
            r_cpu[name] = time.process_time() - c0
            r_scores.update(vals)
            print(f"reference {name}: {r_timings[name]:.2f}s wall, {r_cpu[name]:.2f}s cpu", flush=True)
        reference = {
            "total_s": sum(r_timings.values()),
            "per_metric_s": r_timings,
            "cpu_total_s": sum(r_cpu.values()),
            "per_metric_cpu_s": r_cpu,
            "values": r_scores,
            "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        }
        # keep the slow part even if the untwine part fails (reuse with --reference-from)
        partial = out.with_name(out.stem + "_reference.json")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"config": config, "reference": reference}, indent=2, default=float) + "\n")

    # warm-up on a small sample so imports and one-off set-up are not timed
    t0 = time.perf_counter()
    wc, wf = make_example_arrays(n=600, seed=args.seed + 1)
    evaluate_arrays(wc[:400], wf[:400], wc[400:], wf[400:], seed=args.seed)
    warmup = time.perf_counter() - t0

    best = None
    for _ in range(max(1, args.repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        scores, timings = evaluate_arrays(ctr, ftr, cte, fte, seed=args.seed, return_timings=True)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or total < best[0]:
            best = (total, scores, timings, cpu)
    u_total, u_scores, u_timings, u_cpu = best
    # per-metric CPU time (process time over all threads): meaningful on a shared, loaded machine
    u_metric_cpu = {}
    for name in ARRAY_METRICS:
        c0 = time.process_time()
        evaluate_arrays(ctr, ftr, cte, fte, metrics=name, seed=args.seed)
        u_metric_cpu[name] = time.process_time() - c0
    print(f"untwine suite: {u_total:.2f}s wall, {u_cpu:.2f}s cpu;  " + "  ".join(f"{m} {t:.2f}s" for m, t in u_timings.items()), flush=True)
    print("untwine cpu per metric: " + "  ".join(f"{m} {t:.2f}s" for m, t in u_metric_cpu.items()), flush=True)

    result = {
        "config": config,
        "untwine": {
            "total_s": u_total,
            "cpu_total_s": u_cpu,
            "per_metric_s": u_timings,
            "per_metric_s_note": "wall seconds within the suite run; the fast DCI runs in a background thread "
            "beside the other metrics, so its span overlaps theirs. per_metric_cpu_s runs each metric alone.",
            "per_metric_cpu_s": u_metric_cpu,
            "warmup_s": warmup,
            "values": u_scores,
        },
    }
    result["config"]["load_average_untwine_part"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if args.process > 0:
        result["process"] = process_timings((ctr, ftr, cte, fte), args.process, args.baseline_src)
    if reference is not None:
        r_scores, r_timings, r_total = reference["values"], reference["per_metric_s"], reference["total_s"]
        diffs, flagged = {}, []
        for name in ARRAY_METRICS:
            for key in METRIC_KEYS[name]:
                d = abs(u_scores[key] - r_scores[key])
                diffs[key] = d
                if not d <= tolerance(key):  # also catches NaN
                    flagged.append(
                        {"key": key, "untwine": u_scores[key], "reference": r_scores[key], "abs_diff": d, "tolerance": tolerance(key)}
                    )
        result["reference"] = reference
        result["speedup"] = {
            "total": r_total / u_total,
            "total_cpu": (reference["cpu_total_s"] / u_cpu) if "cpu_total_s" in reference else None,
            "per_metric": {m: r_timings[m] / max(u_timings[m], 1e-9) for m in ARRAY_METRICS},
        }
        result["abs_diff"] = diffs
        result["tolerances"] = {"deterministic": 1e-6, "estimator": 0.02, "dci_fast_vs_gbt": 0.05}
        result["disagreements"] = flagged
        print(f"reference total: {r_total:.1f}s wall   speed-up: {r_total / u_total:.1f}x (wall)")
        if "cpu_total_s" in reference:
            print(f"reference cpu: {reference['cpu_total_s']:.1f}s   speed-up: {reference['cpu_total_s'] / u_cpu:.1f}x (cpu)")
        print(f"{'key':40s} {'untwine':>12s} {'reference':>12s} {'|diff|':>10s}")
        for key, d in diffs.items():
            mark = "  <-- beyond tolerance" if any(f["key"] == key for f in flagged) else ""
            print(f"{key:40s} {u_scores[key]:12.6f} {r_scores[key]:12.6f} {d:10.2e}{mark}")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
