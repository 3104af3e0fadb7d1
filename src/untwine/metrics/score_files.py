"""Scoring codes and factors stored in files: what ``untwine score`` runs.

:func:`score_files` reads codes ``[N, D]`` and factors ``[N, K]`` from ``.npy``,
``.npz`` (the array named by ``key`` or ``FILE.npz:KEY``), ``.csv`` or ``.tsv``
files (:mod:`untwine.arrays`), discretises continuous factors when asked
(``factor_bins``: N equal-width bins between each column's min and max, one set
of edges for train and test together), splits the rows 2:1 at random (seeded)
unless a test split is given, and runs the suite
(:func:`untwine.metrics.suite.evaluate_arrays`).  ``demo=True`` scores a generated
dSprites-like example (:mod:`untwine.examples`) instead of files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from untwine._checks import as_codes, as_factors, check_seed, discretize_factors, same_rows
from untwine.errors import UntwineError

#: rows of the generated example scored with ``demo=True`` (split 2:1)
DEMO_ROWS = 1500


@dataclass
class ScoreResult:
    """What :func:`score_files` computed, and on what."""

    scores: dict[str, float]
    timings: dict[str, float]  #: seconds per metric
    metrics: list[str]  #: metric names, in table order
    source: str  #: where the arrays came from
    split: str  #: how the train/test split was made
    train_rows: int
    test_rows: int
    num_latents: int
    classes: list[int] = field(default_factory=list)  #: distinct values of each factor (train split)
    dci_estimator: str = "fast"


def _read(path: str, key: str | None, label: str):
    from untwine.arrays import read_array

    return read_array(path, key), f"{label} ({path})"


def _validated(codes, factors, cname: str, fname: str, factor_bins: int | None):
    c = as_codes(codes, cname)
    if factor_bins is not None:
        # discretize_factors names its array "factors"; re-check for the file's name first
        as_codes(factors, fname)
        factors = discretize_factors(factors, factor_bins)
    f = as_factors(factors, fname)
    same_rows(c, f, cname, fname)
    return c, f


def _same_columns(a: np.ndarray, b: np.ndarray, aname: str, bname: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise UntwineError(f"{aname} has {a.shape[1]} columns but {bname} has {b.shape[1]}; they must match")


def load_split(
    codes: str,
    factors: str,
    *,
    test_codes: str | None = None,
    test_factors: str | None = None,
    key: str | None = None,
    factor_bins: int | None = None,
    seed: int = 0,
):
    """``(train codes, train factors, test codes, test factors, split description)`` from files."""
    from untwine.metrics.suite import split_train_test

    if (test_codes is None) != (test_factors is None):
        given, missing = ("--test-codes", "--test-factors") if test_codes else ("--test-factors", "--test-codes")
        raise UntwineError(f"{given} needs {missing} as well")
    c, cname = _read(codes, key, "codes")
    f, fname = _read(factors, key, "factors")
    if test_codes is None:
        tr_c, tr_f = _validated(c, f, cname, fname, factor_bins)
        n = tr_c.shape[0]
        return (*split_train_test(tr_c, tr_f, seed), f"seeded 2:1 split of {n} rows, seed {seed}")
    tc, tcname = _read(test_codes, key, "test codes")
    tf, tfname = _read(test_factors, key, "test factors")
    if factor_bins is not None:
        # one set of bin edges for both splits: discretise the rows together
        fa, fb = as_codes(f, fname), as_codes(tf, tfname)
        _same_columns(fa, fb, fname, tfname)
        both = discretize_factors(np.concatenate([fa, fb]), factor_bins)
        f, tf = both[: fa.shape[0]], both[fa.shape[0]:]
    tr_c, tr_f = _validated(c, f, cname, fname, None)
    te_c, te_f = _validated(tc, tf, tcname, tfname, None)
    _same_columns(tr_c, te_c, cname, tcname)
    _same_columns(tr_f, te_f, fname, tfname)
    return tr_c, tr_f, te_c, te_f, "given test split"


def score_files(
    codes: str | None = None,
    factors: str | None = None,
    *,
    test_codes: str | None = None,
    test_factors: str | None = None,
    key: str | None = None,
    factor_bins: int | None = None,
    metrics: str | Sequence[str] = "all",
    seed: int = 0,
    dci_estimator: str = "fast",
    demo: bool = False,
    json_out=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoreResult:
    """Score codes and factors read from files (see the module docstring).

    ``json_out`` writes the scores as one flat JSON object (an undefined score as null,
    its key listed under ``_undefined``; :func:`untwine.files.write_scores`), with DCI's
    estimator under ``_dci_estimator`` when DCI was computed.
    ``progress(name, i, total)`` is called before each metric.
    """
    from untwine.metrics import registry
    from untwine.metrics.suite import evaluate_arrays, split_train_test

    names = registry.parse(metrics)
    check_seed(seed)
    if factor_bins is not None and factor_bins < 2:
        raise UntwineError(f"--factor-bins must be at least 2, got {factor_bins}")
    if demo:
        if codes or factors or test_codes or test_factors:
            raise UntwineError("--demo scores a generated example; do not give CODES/FACTORS files with it")
        from untwine.examples import make_example_arrays

        c, f = make_example_arrays(n=DEMO_ROWS, seed=seed)
        tr_c, tr_f, te_c, te_f = split_train_test(c, f, seed)
        source = f"generated example (dSprites-like factors, seed {seed})"
        split = f"seeded 2:1 split of {c.shape[0]} rows, seed {seed}"
    else:
        if not codes or not factors:
            raise UntwineError("give CODES and FACTORS files (or --demo for a generated example)")
        tr_c, tr_f, te_c, te_f, split = load_split(
            codes, factors, test_codes=test_codes, test_factors=test_factors, key=key, factor_bins=factor_bins, seed=seed
        )
        source = f"{codes}, {factors}"
    scores, timings = evaluate_arrays(
        tr_c, tr_f, te_c, te_f, metrics=names, seed=seed, dci_estimator=dci_estimator, progress=progress, return_timings=True
    )
    if json_out is not None:
        from untwine.files import write_scores

        write_scores(json_out, scores, extra=registry.score_labels(names, dci_estimator=dci_estimator))
    return ScoreResult(
        scores=scores,
        timings=timings,
        metrics=names,
        source=source,
        split=split,
        train_rows=int(tr_c.shape[0]),
        test_rows=int(te_c.shape[0]),
        num_latents=int(tr_c.shape[1]),
        classes=[int(len(np.unique(tr_f[:, k]))) for k in range(tr_f.shape[1])],
        dci_estimator=dci_estimator,
    )
