"""The paragraph that says what a representation captured (untwine.metrics.findings)."""

import numpy as np
import pytest

from untwine.metrics.findings import describe, factor_findings
from untwine.metrics.matrices import normalized_mi


def _grid(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 8, size=(n, 3))


def test_aligned_code_captures_each_factor_in_its_latent():
    f = _grid()
    rng = np.random.default_rng(1)
    # z0 = factor 2, z1 = noise, z2 = factor 0, z3 = factor 1
    codes = np.stack([f[:, 2], rng.normal(size=len(f)), f[:, 0], f[:, 1]], axis=1).astype(float)
    nmi = normalized_mi(codes, f)
    assert nmi.shape == (4, 3)
    # a latent equal to a factor (8 values, 20 bins) holds all of its information
    assert nmi[2, 0] == pytest.approx(1.0) and nmi[3, 1] == pytest.approx(1.0) and nmi[0, 2] == pytest.approx(1.0)
    out = factor_findings(nmi, ["a", "b", "c"])
    assert [(r["name"], r["status"], r["latent"]) for r in out["factors"]] == [
        ("a", "captured", 2), ("b", "captured", 3), ("c", "captured", 0)]
    text = describe(out)
    assert "a -> z2 (1.00 of its information)" in text and "Captured 3 of 3" in text


def test_rotated_code_is_spread_and_noise_is_not_captured():
    f = _grid()
    rng = np.random.default_rng(2)
    a, b = f[:, 0].astype(float), f[:, 1].astype(float)
    codes = np.stack([a + b, a - b, rng.normal(size=len(f))], axis=1)  # factor 2 lives nowhere
    out = factor_findings(normalized_mi(codes, f), ["a", "b", "c"])
    status = {r["name"]: r["status"] for r in out["factors"]}
    assert status == {"a": "spread", "b": "spread", "c": "not captured"}
    text = describe(out)
    assert "No factor of 3 is captured" in text and "Not captured by any single latent: c (best z" in text


def test_passive_latents_are_never_credited_and_are_named():
    nmi = np.array([[0.9, 0.0], [0.1, 0.6], [0.0, 0.05]])
    out = factor_findings(nmi, ["x", "y"], passive_latents=[0])
    assert out["factors"][0]["latent"] != 0
    assert out["factors"][0]["status"] == "not captured"
    text = describe(out, {"mig": 0.31}, {"random_encoder": {"mig": 0.02}, "factors": {"mig": 0.9}})
    assert "1 of 3 latents are passive (carry nothing): z0." in text
    assert "MIG 0.31 (untrained encoder 0.02, the factors themselves 0.90)" in text


def test_one_latent_holding_two_factors_is_named():
    nmi = np.array([[0.8, 0.7], [0.1, 0.1]])
    text = describe(factor_findings(nmi, ["x", "y"]))
    assert "z0 holds x and y together" in text


def test_concept_paragraph_counts_aligned_latents_and_compares_baselines():
    from untwine.metrics.findings import describe_concepts

    nmi = np.array([[0.5, 0.0], [0.0, 0.05], [0.12, 0.0], [0.0, 0.0]])
    text = describe_concepts(nmi, ["colour", "size"], {"mig": 0.4, "sparse_probe_k1": 0.9},
                             {"raw": {"mig": 0.1, "sparse_probe_k1": 0.6}, "supervised": {"mig": 0.8}})
    assert text.startswith("2 of 4 latents align with a factor")
    assert "colour -> latent 0 (0.50)" in text and "size -> latent 1 (0.05, not captured)" in text
    assert "MIG 0.40 (baselines: raw 0.10, supervised 0.80)." in text
    assert "1-sparse probing accuracy 0.90 (baselines: raw 0.60)." in text
