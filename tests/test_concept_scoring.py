"""Concept scoring on synthetic activations with known answers: supervised dictionary, PCA,
k-sparse probing and the edit test."""

from __future__ import annotations

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.concepts.edit import edit_test
from untwine.concepts.pca import PCA
from untwine.concepts.probing import LinearProbes, correlation_ratio, sparse_probing
from untwine.concepts.reconstruction import fvu
from untwine.concepts.supervised_dictionary import SupervisedDictionary

SIZES = (4, 3, 5)
D = 30
SIGMA = 0.5


def additive(n, seed=0, sigma=SIGMA):
    """x = m + sum_a U_a[v_a] + noise; every factor combination equally often (n a multiple of 60)."""
    rng = np.random.default_rng(seed)
    gen = np.random.default_rng(123)
    atoms = [gen.normal(size=(s, D)) * 1.5 for s in SIZES]
    m = gen.normal(size=D) * 3
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij"), -1).reshape(-1, len(SIZES))
    f = rng.permutation(np.tile(grid, (n // len(grid), 1)))
    x = m + sum(atoms[a][f[:, a]] for a in range(len(SIZES))) + sigma * rng.normal(size=(n, D))
    return x, f, atoms


def test_fvu():
    x = np.random.default_rng(0).normal(size=(50, 4))
    assert fvu(x, np.repeat(x.mean(0)[None], 50, 0)) == pytest.approx(1.0)
    assert fvu(x, x) == 0.0
    with pytest.raises(UntwineError, match="shape"):
        fvu(x, x[:, :3])


def test_one_fvu():
    import untwine.lm.supervised_dictionary as old_lm
    import untwine.sae.metrics as sae_metrics

    assert old_lm.fvu is fvu and not hasattr(sae_metrics, "fvu")  # one definition; the old lm path re-exports it
    x = np.random.default_rng(1).normal(size=(40, 3)) + 5.0  # a non-zero mean: the variance is around it
    e = np.random.default_rng(2).normal(size=(40, 3)) * 0.1
    assert fvu(x, x + e) == pytest.approx((e**2).sum() / ((x - x.mean(0)) ** 2).sum())
    flat = np.ones((5, 3))
    assert np.isnan(fvu(flat, flat, undefined="nan"))
    with pytest.raises(UntwineError, match="variance to explain is 0"):
        fvu(flat, flat)


def test_supervised_dictionary_recovers_atoms_and_noise_share():
    x, f, atoms = additive(6000)
    xt, ft, _ = additive(3000, seed=1)
    sd = SupervisedDictionary(SIZES).fit(x, f)
    for a, u in enumerate(atoms):  # u_{a,v} = U_a[v] - mean_v U_a[v] (uniform values)
        assert np.allclose(sd.atoms_[a], u - u.mean(0), atol=0.1)
    signal = sum(((u - u.mean(0)) ** 2).sum(1).mean() for u in atoms)
    noise = D * SIGMA**2
    assert sd.fvu(xt, ft) == pytest.approx(noise / (noise + signal), rel=0.1)
    # without noise the additive model is exact
    x0, f0, _ = additive(1980, sigma=0.0)
    assert SupervisedDictionary(SIZES).fit(x0, f0).fvu(x0, f0) < 1e-3
    # codes: one indicator per value; the label-free projection ranks the true value first
    codes = sd.codes_from_factors(ft[:5])
    assert codes.shape == (5, sum(SIZES)) and (codes.sum(1) == len(SIZES)).all()
    proj = sd.encode(x0[:200])
    starts = np.cumsum((0,) + SIZES[:-1])
    for a, (s, size) in enumerate(zip(starts, SIZES)):
        assert (proj[:, s : s + size].argmax(1) == f0[:200, a]).mean() > 0.9
    with pytest.raises(UntwineError, match="within sizes"):
        sd.reconstruct(np.array([[4, 0, 0]]))


def test_missing_value_gets_zero_vector():
    x, f, _ = additive(300)
    keep = f[:, 0] != 2  # value 2 of factor 0 never seen
    sd = SupervisedDictionary(SIZES).fit(x[keep], f[keep])
    assert sd.missing_ == [(0, 2)] and np.all(sd.atoms_[0][2] == 0)


def test_pca_baseline():
    rng = np.random.default_rng(0)
    low = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 12)) + 5.0  # rank 3 around a mean
    p = PCA(3).fit(low)
    assert fvu(low, p.decode(p.encode(low))) < 1e-20
    assert PCA(2).fit(low).explained_variance_ratio_.sum() < 1.0
    over = PCA(50).fit(low)  # more latents than dimensions: all 12 components, exact
    assert over.num_components == 12 and over.encode(low).shape == (400, 12)
    with pytest.raises(UntwineError, match="positive integer"):
        PCA(0)


def test_sparse_probing_finds_the_coding_latents():
    rng = np.random.default_rng(0)
    n = 900
    f = np.stack([rng.integers(0, s, n) for s in SIZES], axis=1)
    noise = rng.normal(size=(n, 20))
    codes = noise.copy()
    codes[:, 7] = f[:, 0] + 0.05 * rng.normal(size=n)  # latent 7 codes factor 0 (ordinal)
    codes[:, 3] = f[:, 1] + 0.05 * rng.normal(size=n)
    codes[:, 12] = f[:, 2] + 0.05 * rng.normal(size=n)
    eta = correlation_ratio(codes[:600], f[:600, 0])
    assert eta.argmax() == 7 and eta[7] > 0.99 and 0 <= eta.min()
    s = sparse_probing(codes[:600], f[:600], codes[600:], f[600:], factor_names=("a", "b", "c"))
    for k in (1, 2, 5):
        assert s[f"sparse_probe_k{k}_mean"] > 0.97
    chance = sparse_probing(noise[:600], f[:600], noise[600:], f[600:], ks=(1,))
    assert chance["sparse_probe_k1_mean"] < 0.45  # about 1/4, 1/3, 1/5 for codes that carry nothing
    assert set(s) == {f"sparse_probe_k{k}_{n}" for k in (1, 2, 5) for n in ("a", "b", "c", "mean")}


def test_edit_test_with_supervised_dictionary():
    x, f, _ = additive(3000)
    xt, ft, _ = additive(600, seed=1)
    sd = SupervisedDictionary(SIZES).fit(x, f)
    probes = LinearProbes().fit(x, f)
    assert (probes.accuracy(xt, ft) > 0.97).all()
    names = ("a", "b", "c")
    r = edit_test(xt, ft, probes, sd.edit, factor_names=names, factor_sizes=SIZES)
    assert r["edit_flip_mean"] > 0.95 and r["edit_keep_mean"] > 0.95 and r["edit_success_mean"] > 0.9
    # the identity "edit" never reaches the new value while every other probe keeps its answer
    same = edit_test(xt, ft, probes, lambda x, f, a, new: x, factor_names=names, factor_sizes=SIZES)
    assert same["edit_flip_mean"] < 0.05 and same["edit_keep_mean"] == 1.0
    # an edit that also moves factor 1 breaks "keep" for factor 0
    def leaky(x, f, a, new):
        out = sd.edit(x, f, a, new)
        return sd.edit(out, f, 1, (f[:, 1] + 1) % 3) if a == 0 else out
    bad = edit_test(xt, ft, probes, leaky, factor_names=names, factor_sizes=SIZES)
    assert bad["edit_flip_a"] > 0.95 and bad["edit_keep_a"] < 0.1 and bad["edit_keep_b"] > 0.95


def test_top_sentences():
    from untwine.concepts.top_sentences import top_sentences

    codes = np.array([[0.0, 1.0], [3.0, 0.0], [2.0, 5.0], [3.0, 0.0], [0.5, -1.0]])
    sents = ["a", "b", "c"]
    rows = [0, 1, 2, 1, 0]  # token rows -> sentences
    top = top_sentences(codes, sents, rows=rows, n=2)
    assert top[0] == [(3.0, "b"), (2.0, "c")]  # "b" once, at its largest value
    assert top[1] == [(5.0, "c"), (1.0, "a")]
    assert top_sentences(codes, sents, rows=rows, latents=[0], n=5)[0] == [(3.0, "b"), (2.0, "c"), (0.5, "a")]
    with pytest.raises(UntwineError, match="out of range"):
        top_sentences(codes, sents, rows=rows, latents=[2])
    with pytest.raises(UntwineError, match="must match"):
        top_sentences(codes, sents, rows=rows[:3])


def test_concept_baselines_side_by_side():
    from untwine.concepts.baselines import concept_baselines, split_rows

    x, f, _ = additive(540)
    tr, te = split_rows(len(x), seed=0)
    assert len(tr) == 360 and len(te) == 180 and not set(tr) & set(te)
    out = concept_baselines(x[tr], f[tr], x[te], f[te], num_latents=64, factor_names=("a", "b", "c"),
                            factor_sizes=SIZES)
    assert out["raw"]["fvu"] == 0.0 and out["pca"]["latents"] == D  # 64 latents > 30 dims: all components
    assert out["pca"]["fvu"] < 1e-20
    sup = out["supervised"]
    assert sup["latents"] == sum(SIZES) and 0.05 < sup["fvu"] < 0.3  # about the noise share
    assert sup["dci_disentanglement"] > 0.95  # indicator codes: each latent belongs to one factor
    assert sup["sparse_probe_k5_mean"] > 0.95 and "mig" in out["raw"]
    assert out["edit"]["edit_success_mean"] > 0.9 and min(out["probe_accuracy"].values()) > 0.95


def test_correlation_ratios_equal_one_factor_at_a_time():
    from untwine.concepts.probing import correlation_ratios

    rng = np.random.default_rng(6)
    codes = rng.standard_normal((200, 7)) * (rng.random((200, 7)) < 0.4)
    codes[:, 3] = 1.0  # constant: 0
    f = np.stack([rng.integers(0, s, 200) for s in (2, 5, 3)], 1)
    etas = correlation_ratios(codes, f)
    assert etas.shape == (3, 7)
    for k in range(3):
        np.testing.assert_array_equal(etas[k], correlation_ratio(codes, f[:, k]))
        labels = f[:, k]
        between = sum((labels == v).sum() * (codes[labels == v].mean(0) - codes.mean(0)) ** 2 for v in np.unique(labels))
        total = ((codes - codes.mean(0)) ** 2).sum(0)
        np.testing.assert_allclose(etas[k], np.where(total > 0, between / np.where(total > 0, total, 1), 0), atol=1e-12)


def test_probes_fit_with_one_blas_thread(monkeypatch):
    # thin products: extra BLAS threads only spin (sparse probing of 512 latents took 2.5x the CPU)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import untwine.concepts.probing as probing

    seen = []
    fit = probing._fit_lr
    monkeypatch.setattr(probing, "_fit_lr", lambda *a: seen.append(
        max([i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"], default=1)) or fit(*a))
    rng = np.random.default_rng(0)
    f = rng.integers(0, 2, (60, 2))
    x = f @ rng.standard_normal((2, 4)) + 0.1 * rng.standard_normal((60, 4))
    sparse_probing(x[:40], f[:40], x[40:], f[40:], ks=(1,))
    LinearProbes().fit(x, f)
    assert seen and set(seen) == {1}
