"""Run every array metric on one (codes, factors) sample: the suite behind ``untwine score``.

Which sample each metric uses follows disentanglement_lib's sample usage
(``evaluation/metrics/*.py`` with the ``num_train``/``num_test`` settings of its
study configs):

* MIG, Modularity, IRS, the unsupervised scores and InfoMEC are computed on the
  train split;
* SAP, DCI and Explicitness fit on the train split and report on the test
  split (DCI and Explicitness also report the train split).

Without a test split, :func:`evaluate_arrays` draws a seeded 2:1 split of the
rows (:func:`split_train_test`; disentanglement_lib samples its train and test
points independently, a random split of one sample is the array-level
equivalent).  Defaults are those of disentanglement_lib / ../METRICS.md: 20
equal-width bins, IRS quantile 0.99 on factors discretised into 20 bins, DCI with
untwine's fast estimator (``dci_estimator="gbt"`` reproduces the reference
gradient-boosted trees), InfoMEC with the paper's standalone settings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from untwine._checks import check_pair, check_train_test
from untwine.metrics import registry
from untwine.metrics._info import native_float
from untwine.metrics._undefined import merged_undefined_warnings
from untwine.errors import UntwineError



def __getattr__(name: str):
    # views of the metric table (untwine.metrics.registry), computed when asked so that a
    # metric registered later shows up too
    if name == "ARRAY_METRICS":
        return tuple(registry.names())
    if name == "METRIC_KEYS":
        return {n: registry.METRICS[n].keys for n in registry.names()}
    if name == "SCORE_KEYS":
        return registry.score_keys()
    if name == "METRIC_SPLITS":
        return {n: registry.METRICS[n].split for n in registry.names()}
    raise AttributeError(f"module 'untwine.metrics.suite' has no attribute {name!r}")


DCI_ESTIMATORS = registry.DCI_ESTIMATORS


def parse_metric_names(spec: str | Sequence[str]) -> list[str]:
    """Turn ``"all"``, ``"mig,sap"`` or ``["mig", "sap"]`` into array metric names (see
    :func:`untwine.metrics.registry.parse`)."""
    return registry.parse(spec)


def split_train_test(codes, factors, seed: int = 0, fraction: float = 2 / 3):
    """Seeded random split of the rows: ``(codes_train, factors_train, codes_test, factors_test)``.

    ``ceil(N * fraction)`` rows (in random order drawn from ``seed``) go to the
    train split, the rest to the test split.
    """
    codes = np.asarray(codes)
    factors = np.asarray(factors)
    n = codes.shape[0]
    if factors.shape[0] != n:
        raise UntwineError(f"codes has {n} rows but factors has {factors.shape[0]}; they must match")
    if not 0.0 < fraction < 1.0:
        raise UntwineError(f"train fraction must be between 0 and 1, got {fraction}")
    n_train = int(math.ceil(n * fraction))
    if n_train < 2 or n - n_train < 2:
        raise UntwineError(f"{n} rows are too few to split into train and test; give at least 6 rows or a test split")
    perm = np.random.default_rng(seed).permutation(n)
    tr, te = perm[:n_train], perm[n_train:]
    return codes[tr], factors[tr], codes[te], factors[te]


def evaluate_arrays(
    codes_train,
    factors_train,
    codes_test=None,
    factors_test=None,
    *,
    metrics: str | Sequence[str] = "all",
    seed: int = 0,
    dci_estimator: str = "fast",
    progress: Callable[[str, int, int], None] | None = None,
    return_timings: bool = False,
):
    """Compute the suite's metrics on codes ``[N, D]`` and integer factors ``[N, K]``.

    With ``codes_test``/``factors_test`` omitted, a seeded 2:1 split of the
    given rows is used (:func:`split_train_test`).  ``metrics`` selects metrics
    (see :func:`parse_metric_names`); ``seed`` seeds the split and the
    estimator-based metrics (DCI, InfoMEC); ``dci_estimator`` is ``"fast"`` or
    ``"gbt"`` (the reference gradient-boosted trees).  ``progress(name, i, total)``
    is called before each metric runs.  The fast DCI estimator runs in a
    background thread beside the other metrics (``timings`` then overlap).

    A score that is undefined on these data (for example DCI disentanglement, modularity
    and InfoM with a single factor) is NaN, with one warning line per reason.

    Returns ``{key: float}`` with the keys of the selected metrics in
    :func:`untwine.metrics.registry.score_keys` order, or ``(scores, timings)`` with ``timings`` the
    seconds each metric took when ``return_timings`` is true.
    """
    names = parse_metric_names(metrics)
    if dci_estimator not in DCI_ESTIMATORS:
        raise UntwineError(f"unknown DCI estimator {dci_estimator!r}; choose one of: {', '.join(DCI_ESTIMATORS)}")
    if (codes_test is None) != (factors_test is None):
        raise UntwineError("give both test codes and test factors, or neither")

    # codes keep their floating dtype: binned metrics must bin float32 codes in float32, as dlib does
    if codes_test is None:
        tr_c, tr_f = check_pair(codes_train, factors_train)
        tr_c, tr_f, te_c, te_f = split_train_test(native_float(codes_train, tr_c), tr_f, seed)
    else:
        tr_c, tr_f, te_c, te_f = check_train_test(codes_train, factors_train, codes_test, factors_test)
        tr_c, te_c = native_float(codes_train, tr_c), native_float(codes_test, te_c)

    def run(name: str) -> tuple[dict, float]:
        t0 = time.perf_counter()
        out = registry.call_array(name, tr_c, tr_f, te_c, te_f, seed=seed, dci_estimator=dci_estimator)
        return out, time.perf_counter() - t0

    results: dict[str, tuple[dict, float]] = {}
    # an undefined score warns from its metric; one line per reason, naming every key
    with merged_undefined_warnings(registry.keys_of(names)), ThreadPoolExecutor(max_workers=1) as pool:
        # the fast DCI fits (the longest metric; LightGBM releases the GIL) run beside the others
        background = {}
        if dci_estimator == "fast" and "dci" in names and len(names) > 1:
            if progress is not None:
                progress("dci", names.index("dci"), len(names))
            background["dci"] = pool.submit(run, "dci")
        for i, name in enumerate(names):
            if name in background:
                continue
            if progress is not None:
                progress(name, i, len(names))
            results[name] = run(name)
        results.update({name: future.result() for name, future in background.items()})

    scores: dict[str, float] = {}
    timings: dict[str, float] = {}
    for name in names:
        out, timings[name] = results[name]
        keys = registry.METRICS[name].keys
        missing = [k for k in keys if k not in out]
        if missing:  # a broken metric module, not bad input
            raise RuntimeError(f"metric {name} did not return {missing}")
        for key in keys:
            scores[key] = float(out[key])
    if return_timings:
        return scores, timings
    return scores
