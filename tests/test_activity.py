"""Active/passive latents and the mean/sampled/active-only comparison ("Be More Active!")."""

from __future__ import annotations

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.metrics.activity import (
    activity_summary,
    compare_representations,
    comparison_scores,
    gaussian_kl,
    latent_activity,
    sample_representation,
)

PASSIVE = (1, 3, 4)


def constructed(n=3000, seed=0):
    """5 latents: 0 and 2 encode the two factors, 1, 3, 4 are passive (posterior = prior
    except for tiny mean movements shared by all three, as the paper observes)."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 8, size=(n, 2))
    means = np.zeros((n, 5))
    logvars = np.zeros((n, 5))
    means[:, 0] = f[:, 0] / 4 - 1 + 0.05 * rng.standard_normal(n)
    means[:, 2] = f[:, 1] / 4 - 1 + 0.05 * rng.standard_normal(n)
    logvars[:, [0, 2]] = np.log(0.01)
    shared = rng.standard_normal(n)
    for j, w in zip(PASSIVE, (1.0, -0.7, 0.4)):
        means[:, j] = 1e-3 * w * shared + 1e-5 * rng.standard_normal(n)
        logvars[:, j] = 1e-3 * rng.standard_normal(n)
    return means, logvars, f


def gaussian_tc(codes):
    """Gaussian total correlation of the codes' covariance (dlib's unsupervised_metrics)."""
    cov = np.cov(codes, rowvar=False)
    return 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])


def tc_scorer(c_tr, f_tr, c_te, f_te, seed):
    return {"gaussian_total_correlation": float(gaussian_tc(c_tr))}


def test_kl_closed_form():
    kl = gaussian_kl([[1.0, 0.0, 0.0]], [[0.0, np.log(4.0), 0.0]])
    np.testing.assert_allclose(kl[0], [0.5, 0.5 * (4 - np.log(4) - 1), 0.0])


def test_passive_set_detected_exactly():
    means, logvars, _ = constructed()
    act = latent_activity(means, logvars)
    assert act["criterion"] == "kl" and act["threshold"] == 0.01
    assert act["passive_latents"].tolist() == list(PASSIVE)
    assert act["active_latents"].tolist() == [0, 2]
    assert set(act["order"][:2].tolist()) == {0, 2}
    # passive latents are collapsed at (almost) every input, active ones nowhere
    np.testing.assert_array_equal(act["collapsed_fraction"][list(PASSIVE)], 1.0)
    np.testing.assert_array_equal(act["collapsed_fraction"][[0, 2]], 0.0)
    np.testing.assert_allclose(act["posterior_variance"][list(PASSIVE)], 1.0, atol=1e-3)
    assert np.all(act["mean_variance"][list(PASSIVE)] < 1e-5)
    s = activity_summary(act)
    assert s == {"num_latents": 5.0, "num_active_latents": 2.0, "num_passive_latents": 3.0,
                 "total_kl": pytest.approx(float(act["kl"].sum()))}


def test_threshold_moves_the_boundary():
    means, logvars, _ = constructed()
    act = latent_activity(means, logvars)
    # with a threshold above the active latents' KL, nothing is active
    hi = latent_activity(means, logvars, kl_threshold=float(act["kl"].max()) + 1)
    assert hi["active_latents"].size == 0
    lo = latent_activity(means, logvars, kl_threshold=0.0)
    assert lo["active_latents"].size == 5


def test_deterministic_codes_use_relative_std():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((500, 4)) * np.array([1.0, 0.01, 0.3, 0.0])
    act = latent_activity(codes)
    assert act["criterion"] == "std_ratio" and act["kl"] is None
    assert act["passive_latents"].tolist() == [1, 3]
    assert act["order"].tolist() == [0, 2, 1, 3]


def test_passive_latents_inflate_mean_total_correlation():
    means, logvars, f = constructed()
    out = compare_representations(means, logvars, f, scorer=tc_scorer, seed=0)
    tc_mean = out["mean"]["gaussian_total_correlation"]
    tc_sampled = out["sampled"]["gaussian_total_correlation"]
    tc_active = out["mean_active"]["gaussian_total_correlation"]
    # the mean representation looks strongly correlated (the passive latents move together) ...
    assert tc_mean > 5.0
    # ... the sampled one does not (passive latents become independent prior noise) ...
    assert tc_sampled < 0.01
    # ... and removing the passive latents from the mean removes the effect
    assert tc_active < 0.01
    flat = comparison_scores(out)
    assert flat["num_passive_latents"] == 3.0
    assert flat["mean.gaussian_total_correlation"] == tc_mean and flat["sampled.gaussian_total_correlation"] == tc_sampled
    assert all(isinstance(v, float) for v in flat.values())


def test_with_the_real_suite():
    means, logvars, f = constructed(n=1500)
    out = compare_representations(means, logvars, f, metrics=["unsupervised", "mig"], seed=0)
    for rep in ("mean", "sampled", "mean_active"):
        assert {"mig", "gaussian_total_correlation"} <= set(out[rep])
    assert out["mean"]["gaussian_total_correlation"] > 5.0
    assert out["sampled"]["gaussian_total_correlation"] < 0.05
    assert out["mean_active"]["gaussian_total_correlation"] < 0.05
    # MIG looks at the informative latents: removing the passive ones leaves it (nearly) unchanged,
    # the passive latents only carry finite-sample spurious information
    assert out["mean_active"]["mig"] == pytest.approx(out["mean"]["mig"], abs=1e-3)
    assert out["mean"]["mig"] > 0.5


def test_sampling_is_seeded_and_has_posterior_spread():
    means, logvars, _ = constructed(n=4000)
    a = sample_representation(means, logvars, np.random.default_rng(3))
    b = sample_representation(means, logvars, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    # passive latents are N(0, 1) noise once sampled
    np.testing.assert_allclose(a[:, list(PASSIVE)].std(axis=0), 1.0, atol=0.05)


def test_bad_input():
    means, logvars, f = constructed(n=100)
    with pytest.raises(UntwineError, match="logvars has shape"):
        latent_activity(means, logvars[:, :3])
    with pytest.raises(UntwineError, match="Gaussian encoder"):
        compare_representations(means, None, f)
    with pytest.raises(UntwineError, match="rows"):
        compare_representations(means, logvars, f[:50], scorer=tc_scorer)
    with pytest.raises(UntwineError, match="non-finite"):
        latent_activity(np.full((4, 2), np.nan), np.zeros((4, 2)))
