"""Representation-health measures against closed forms and brute-force references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import skew

from untwine.cli import main
from untwine.errors import UntwineError
from untwine.metrics import health as H


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_anisotropy_closed_forms():
    x = _rng().normal(size=(3000, 40))
    assert abs(H.anisotropy(x)) < 0.005  # centred isotropic Gaussian
    v = _rng(1).normal(size=40)
    same_dir = np.abs(_rng(2).normal(size=(50, 1))) * v  # positive multiples of one vector
    assert H.anisotropy(same_dir) == pytest.approx(1.0, abs=1e-12)
    # brute force on a small shifted cloud
    y = _rng(3).normal(size=(30, 5)) + 2.0
    u = y / np.linalg.norm(y, axis=1, keepdims=True)
    c = u @ u.T
    ref = (c.sum() - np.trace(c)) / (30 * 29)
    assert H.anisotropy(y) == pytest.approx(ref, rel=1e-12)
    assert H.anisotropy(y) > 0.5  # a common offset makes rows point the same way


def test_isotropy():
    x = _rng().normal(size=(20000, 8))
    assert H.isotropy(x) > 0.8  # isotropic: Z(c) ~ N exp(1/2) for every direction
    assert H.isotropy(x + 5.0) < 1e-6  # the common direction dominates the partition function
    # brute force with the eigenvectors of X^T X and both signs
    y = _rng(1).normal(size=(40, 3)) * [1.0, 2.0, 0.5]
    _, vecs = np.linalg.eigh(y.T @ y)
    z = [np.exp(y @ (s * vecs[:, j])).sum() for j in range(3) for s in (1, -1)]
    assert H.isotropy(y) == pytest.approx(min(z) / max(z), rel=1e-10)


@pytest.mark.parametrize("r", [1, 3, 7])
def test_effective_rank_of_rank_r_matrix(r):
    a = _rng(r).normal(size=(200, r))
    a -= a.mean(axis=0)
    q, _ = np.linalg.qr(a)  # orthonormal, zero-mean columns: r equal singular values
    basis, _ = np.linalg.qr(_rng(20 + r).normal(size=(30, r)))
    x = 3.0 * q @ basis.T + 7.0  # rank r after centring, embedded in 30 dims, shifted
    assert H.effective_rank(x) == pytest.approx(r, rel=1e-6)
    # unequal singular values give less than r
    if r > 1:
        assert H.effective_rank(q * np.arange(1, r + 1) @ basis.T) < r
    assert H.effective_rank(np.ones((5, 4))) == 0.0


def test_von_neumann_entropy():
    assert H.von_neumann_entropy(np.tile([[1.0, 2.0, 3.0]], (10, 1))) == pytest.approx(0.0, abs=1e-12)
    # d orthonormal directions, equally often: Gram eigenvalues 1/d each -> log d
    x = np.tile(np.eye(6) * 4.0, (5, 1))
    assert H.von_neumann_entropy(x) == pytest.approx(math.log(6), rel=1e-10)
    g = _rng().normal(size=(4000, 16))
    assert math.log(16) - 0.05 < H.von_neumann_entropy(g) <= math.log(16) + 1e-9
    # the n x n route (N < D) agrees with the D x D route
    s = _rng(1).normal(size=(12, 40))
    u = s / np.linalg.norm(s, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(u @ u.T / 12)
    lam = lam[lam > 1e-15]
    assert H.von_neumann_entropy(s) == pytest.approx(-(lam * np.log(lam)).sum(), rel=1e-9)


def _brute_knn(x, k):
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


def test_knn_matches_brute_force():
    x = _rng().normal(size=(300, 7))
    d, i = H.knn(x, 5)
    bd, bi = _brute_knn(x, 5)
    assert np.array_equal(i, bi)
    assert np.allclose(d, bd, rtol=1e-12)


def test_hubness():
    x = _rng().normal(size=(600, 5))
    _, idx = _brute_knn(x, 10)
    counts = np.bincount(idx.ravel(), minlength=600)
    assert H.hubness(x) == pytest.approx(skew(counts), rel=1e-10)
    # a ring of evenly spaced points: every point is a neighbour of exactly k others
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False) + 1e-3 * np.sin(np.arange(200))  # break exact ties
    ring = np.c_[np.cos(t), np.sin(t)]
    assert H.hubness(ring, k=4) == pytest.approx(0.0, abs=1e-9)
    # hubness grows with dimension (Radovanovic et al.): i.i.d. Gaussian in 100-D has strong hubs
    hi = H.hubness(_rng(1).normal(size=(1000, 100)))
    lo = H.hubness(_rng(1).normal(size=(1000, 2)))
    assert hi > 1.0 and hi > lo + 0.5


@pytest.mark.parametrize("d", [2, 4])
def test_intrinsic_dimension_of_linear_subspace(d):
    z = _rng(d).uniform(size=(2500, d))
    basis, _ = np.linalg.qr(_rng(d + 1).normal(size=(60, d)))
    x = z @ basis.T * 5.0 + 1.0  # a d-dim patch of a 60-dim space
    assert H.twonn_dimension(x) == pytest.approx(d, rel=0.12)
    assert H.lid_mle(x) == pytest.approx(d, rel=0.15)
    # brute-force Levina-Bickel on a small set
    s = x[:200]
    bd, _ = _brute_knn(s, 20)
    ref = np.mean(1.0 / (np.log(bd[:, -1:] / bd[:, :-1]).sum(1) / 19))
    assert H.lid_mle(s) == pytest.approx(ref, rel=1e-10)
    assert H.twonn_dimension(s) == pytest.approx(200 / np.log(bd[:, 1] / bd[:, 0]).sum(), rel=1e-10)


def test_uniformity_closed_forms():
    assert H.uniformity(np.array([[1.0, 0.0], [-3.0, 0.0]])) == pytest.approx(-8.0)  # antipodal: the minimum
    assert H.uniformity(np.tile([[0.0, 2.0, 1.0]], (6, 1))) == pytest.approx(0.0, abs=1e-12)  # identical: the maximum
    # a regular simplex of d + 1 unit vectors: ||u - v||^2 = 2 + 2/d for every pair
    d = 5
    e = np.eye(d + 1) - 1.0 / (d + 1)
    assert H.uniformity(e) == pytest.approx(-2 * (2 + 2 / d), rel=1e-10)
    g = _rng().normal(size=(1500, 200))  # uniform on a high-dimensional sphere: ||u - v||^2 ~ 2
    assert -4.1 < H.uniformity(g) < -3.9
    # block boundaries: brute force on more rows than one block
    s = _rng(1).normal(size=(1100, 3))
    u = s / np.linalg.norm(s, axis=1, keepdims=True)
    iu = np.triu_indices(1100, 1)
    sq = ((u[:, None] - u[None]) ** 2).sum(-1)[iu]
    assert H.uniformity(s) == pytest.approx(np.log(np.mean(np.exp(-2 * sq))), rel=1e-9)


def test_report_and_subsampling():
    x = _rng().normal(size=(300, 6))
    rep = H.health_report(x, max_rows=100, seed=3)
    assert set(H.MEASURES) <= set(rep)
    assert rep["rows"] == 300 and rep["rows_sampled"] == 100 and rep["sample_seed"] == 3
    assert all(isinstance(v, float) for v in rep.values())
    sub = H.subsample(x, 100, 3)
    assert rep["hubness"] == pytest.approx(H.hubness(sub, max_rows=None))
    assert rep["anisotropy"] == pytest.approx(H.anisotropy(x))  # exact on every row
    assert H.health_report(x, max_rows=100, seed=3) == rep  # seeded
    assert H.health_report(x, max_rows=100, seed=4)["hubness"] != rep["hubness"]
    full = H.health_report(x)
    assert full["rows_sampled"] == 300


def test_bad_input():
    x = _rng().normal(size=(8, 3))
    with pytest.raises(UntwineError, match="k = 10 neighbours needs more than 10 rows"):
        H.hubness(x)
    with pytest.raises(UntwineError, match="at least 2 rows"):
        H.anisotropy(x[:1])
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(UntwineError, match="non-finite"):
        H.health_report(bad)
    with pytest.raises(UntwineError, match="all-zero row"):
        H.uniformity(np.vstack([x, np.zeros(3)]))
    with pytest.raises(UntwineError, match="unknown health measure"):
        H.health_report(x, measures=("anisotropy", "nope"))


def test_cli(tmp_path, capsys):
    x = _rng().normal(size=(120, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    out = tmp_path / "h.json"
    assert main(["health", str(tmp_path / "a.npy"), "--json", str(out), "--max-rows", "80"]) == 0
    got = json.loads(out.read_text())
    assert got["rows"] == 120 and got["rows_sampled"] == 80
    assert got["anisotropy"] == pytest.approx(H.anisotropy(x), rel=1e-6)
    assert "subsample of 80 rows (seed 0)" in capsys.readouterr().out
    # a safetensors file and a shard directory give the same rows
    from safetensors.numpy import save_file

    from untwine.activations.reader import read_activations
    from untwine.activations.shards import ShardWriter

    save_file({"activations": x}, str(tmp_path / "a.safetensors"))
    w = ShardWriter(tmp_path / "layer_0", {"test": 1})
    w.append(x[:50], np.arange(50))
    w.append(x[50:], np.arange(50, 120))
    assert np.array_equal(read_activations(tmp_path / "layer_0"), x)
    assert np.array_equal(read_activations(tmp_path / "a.safetensors"), x)
    assert main(["health", str(tmp_path / "layer_0"), "--json", str(tmp_path / "h2.json"), "--max-rows", "80"]) == 0
    assert json.loads((tmp_path / "h2.json").read_text()) == got
    # bad input: one line, exit 2
    np.save(tmp_path / "one.npy", x[:1])
    assert main(["health", str(tmp_path / "one.npy")]) == 2
    assert main(["health", str(tmp_path / "a.npy"), "--hubness-k", "500"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "error: activations: needs at least 2 rows" in err


def test_cli_defaults_match_the_library():
    from untwine.commands import health as cmd

    assert (cmd.MAX_PAIR_ROWS, cmd.HUBNESS_K, cmd.LID_K) == (H.MAX_PAIR_ROWS, H.HUBNESS_K, H.LID_K)
