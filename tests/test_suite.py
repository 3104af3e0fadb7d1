"""The metric suite behind ``untwine score``: names, keys, splits and wiring."""

import importlib

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.examples import EXAMPLE_FACTOR_SIZES, make_example_arrays
from untwine.metrics.suite import (
    ARRAY_METRICS,
    METRIC_KEYS,
    SCORE_KEYS,
    evaluate_arrays,
    parse_metric_names,
    split_train_test,
)

EXPECTED_KEYS = (
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness_train",
    "dci_informativeness_test",
    "modularity",
    "explicitness_train",
    "explicitness_test",
    "irs",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
    "infom",
    "infoe",
    "infoc",
)


@pytest.fixture(scope="module")
def example():
    return make_example_arrays(n=600, seed=3)


@pytest.fixture(scope="module")
def full_run(example):
    codes, factors = example
    return evaluate_arrays(codes, factors, seed=0, return_timings=True)


def test_score_keys_are_the_documented_ones_in_order():
    assert SCORE_KEYS == EXPECTED_KEYS
    assert tuple(ARRAY_METRICS) == ("mig", "sap", "dci", "modularity", "explicitness", "irs", "unsupervised", "infomec")
    assert set(METRIC_KEYS) == set(ARRAY_METRICS)


def test_parse_metric_names():
    assert parse_metric_names("all") == list(ARRAY_METRICS)
    assert parse_metric_names(["mig", "all"]) == list(ARRAY_METRICS)
    # suite order, case-insensitive, spaces and duplicates tolerated
    assert parse_metric_names(" SAP, mig ,sap") == ["mig", "sap"]
    assert parse_metric_names(["infomec", "dci,irs"]) == ["dci", "irs", "infomec"]
    with pytest.raises(UntwineError, match="unknown metric 'foo'.*valid: all, mig, sap, dci"):
        parse_metric_names("mig,foo")
    with pytest.raises(UntwineError, match="no metric given"):
        parse_metric_names(" , ")


def test_split_is_seeded_two_to_one_and_keeps_rows(example):
    codes, factors = example
    a = split_train_test(codes, factors, seed=5)
    b = split_train_test(codes, factors, seed=5)
    c = split_train_test(codes, factors, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (400, 10) and a[2].shape == (200, 10)
    assert a[1].shape == (400, 5) and a[3].shape == (200, 5)
    # the two parts are a permutation of the rows, codes and factors kept together
    joined = np.concatenate([np.concatenate([a[0], a[1]], 1), np.concatenate([a[2], a[3]], 1)])
    original = np.concatenate([codes, factors], 1)
    np.testing.assert_array_equal(np.unique(joined, axis=0), np.unique(original, axis=0))
    # odd sizes: ceil for train
    s = split_train_test(codes[:10], factors[:10], seed=0)
    assert s[0].shape[0] == 7 and s[2].shape[0] == 3
    with pytest.raises(UntwineError, match="too few"):
        split_train_test(codes[:4], factors[:4], seed=0)


def test_full_suite_returns_exactly_the_keys(full_run):
    scores, timings = full_run
    assert tuple(scores) == EXPECTED_KEYS
    assert all(type(v) is float for v in scores.values())
    assert all(np.isfinite(v) for v in scores.values())
    assert tuple(timings) == tuple(ARRAY_METRICS)
    assert all(t >= 0 for t in timings.values())
    # bounded scores stay in [0, 1]
    for key in EXPECTED_KEYS:
        if not key.startswith("gaussian") and key != "mutual_info_score":
            assert -1e-9 <= scores[key] <= 1 + 1e-9, key


def test_seeded_suite_is_reproducible_and_implicit_split_equals_explicit(example, full_run):
    codes, factors = example
    tr_c, tr_f, te_c, te_f = split_train_test(codes, factors, 0)
    # a second, independent computation (explicit split) gives the very same numbers
    explicit = evaluate_arrays(tr_c, tr_f, te_c, te_f, seed=0)
    assert explicit == full_run[0]


def test_each_metric_sees_the_documented_split(example, full_run):
    """Train-only metrics get the train split; SAP/DCI/Explicitness fit on train, score on test."""
    codes, factors = example
    tr_c, tr_f, te_c, te_f = split_train_test(codes, factors, 0)
    scores = full_run[0]

    def call(name, *a, **kw):
        return getattr(importlib.import_module(f"untwine.metrics.{name}"), name)(*a, **kw)

    direct = {}
    direct.update(call("mig", tr_c, tr_f))
    direct.update(call("sap", tr_c, tr_f, te_c, te_f))
    direct.update(call("dci", tr_c, tr_f, te_c, te_f, estimator="fast", seed=0))
    direct.update(call("modularity", tr_c, tr_f))
    direct.update(call("explicitness", tr_c, tr_f, te_c, te_f))
    direct.update(call("irs", tr_c, tr_f))
    direct.update(call("unsupervised", tr_c))
    direct.update(call("infomec", tr_c, tr_f, seed=0))
    for key in EXPECTED_KEYS:
        assert scores[key] == pytest.approx(float(direct[key]), abs=1e-12), key
    # and using the whole sample instead of the train split would change a train-only metric
    assert call("mig", codes, factors)["mig"] != scores["mig"]


def test_metric_subset_and_progress(example):
    codes, factors = example
    seen = []
    out = evaluate_arrays(codes, factors, metrics="irs,mig", progress=lambda n, i, t: seen.append((n, i, t)))
    assert tuple(out) == ("mig", "irs")
    assert seen == [("mig", 0, 2), ("irs", 1, 2)]


def test_suite_validates_inputs(example):
    codes, factors = example
    with pytest.raises(UntwineError, match="both test codes and test factors"):
        evaluate_arrays(codes, factors, codes[:10])
    with pytest.raises(UntwineError, match="codes_test has 9 columns but codes_train has 10"):
        evaluate_arrays(codes, factors, codes[:30, :9], factors[:30], metrics="mig")
    with pytest.raises(UntwineError, match="factors_test has 4 columns but factors_train has 5"):
        evaluate_arrays(codes, factors, codes[:30], factors[:30, :4], metrics="mig")
    with pytest.raises(UntwineError, match="600 rows but factors has 599"):
        evaluate_arrays(codes, factors[:-1], metrics="mig")
    bad = codes.copy()
    bad[3, 2] = np.inf
    with pytest.raises(UntwineError, match="row 3, column 2"):
        evaluate_arrays(bad, factors, metrics="mig")
    with pytest.raises(UntwineError, match="unknown DCI estimator"):
        evaluate_arrays(codes, factors, metrics="dci", dci_estimator="forest")


def test_example_arrays_are_seeded_and_shaped():
    c1, f1 = make_example_arrays(n=300, seed=1)
    c2, f2 = make_example_arrays(n=300, seed=1)
    c3, _ = make_example_arrays(n=300, seed=2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(f1, f2)
    assert not np.array_equal(c1, c3)
    assert c1.shape == (300, 10) and f1.shape == (300, 5) and f1.dtype == np.int64
    assert np.all(f1.max(axis=0) < np.asarray(EXAMPLE_FACTOR_SIZES)) and f1.min() >= 0


def test_example_scores_sit_between_perfect_and_noise():
    """The example is partially disentangled: clearly above pure noise, clearly below perfect."""
    codes, factors = make_example_arrays(n=900, seed=0)
    rng = np.random.default_rng(0)
    ex = evaluate_arrays(codes, factors, metrics="mig,irs", seed=0)
    noise = evaluate_arrays(rng.standard_normal(codes.shape), factors, metrics="mig,irs", seed=0)
    assert noise["mig"] < 0.05 < 0.2 < ex["mig"] < 0.9
    assert noise["irs"] < ex["irs"]
