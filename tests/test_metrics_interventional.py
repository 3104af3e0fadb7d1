"""Tests of the interventional metrics: BetaVAE score and FactorVAE score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from untwine.data.base import GroundTruthDataset
from untwine.errors import UntwineError
from untwine.metrics._encode_cache import CodeCache
from untwine.metrics.beta_vae import beta_vae_score, draw_beta_vae_points
from untwine.metrics.factor_vae import draw_factor_vae_votes, factor_vae_score, majority_vote_accuracy


class OneHotRows(GroundTruthDataset):
    """Tiny full grid: row k of a [1, K, max_size] image is one-hot at factor k's value."""

    binary = True

    def __init__(self, sizes=(3, 4, 5)):
        self.name = "onehot"
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{k}" for k in range(len(sizes)))
        self.observation_shape = (1, len(sizes), max(sizes))

    def observations(self, factors):
        f = np.asarray(factors, dtype=np.int64)
        x = np.zeros((f.shape[0], *self.observation_shape), dtype=np.float32)
        rows = np.arange(f.shape[0])
        for k in range(f.shape[1]):
            x[rows, 0, k, f[:, k]] = 1.0
        return torch.from_numpy(x)


class NotAGrid(OneHotRows):
    @property
    def is_full_grid(self) -> bool:
        return False


def oracle(x: torch.Tensor) -> torch.Tensor:
    """Recovers the factors exactly from a OneHotRows image."""
    return x[:, 0].argmax(dim=2).float()


class Projection:
    """Deterministic row-wise encoder (float64, so batching cannot change a code)."""

    def __init__(self, dataset, dim=6, seed=3):
        n_pix = int(np.prod(dataset.observation_shape))
        self.w = np.random.default_rng(seed).normal(size=(n_pix, dim))
        self.images = 0

    def __call__(self, x):
        self.images += x.shape[0]
        flat = x.numpy().reshape(x.shape[0], -1).astype(np.float64)
        return np.stack([(flat * self.w[:, j]).sum(axis=1) for j in range(self.w.shape[1])], axis=1)


def noise_encoder(seed=0, dim=5):
    gen = np.random.default_rng(seed)
    return lambda x: gen.normal(size=(x.shape[0], dim))


SMALL = dict(batch_size=16, num_train=300, num_eval=300)


@pytest.mark.parametrize("strategy", ["lookup", "naive"])
def test_oracle_scores_one(strategy):
    ds = OneHotRows()
    b = beta_vae_score(ds, oracle, 0, strategy=strategy, **SMALL)
    f = factor_vae_score(ds, oracle, 0, strategy=strategy, num_variance_estimate=500, **SMALL)
    assert b == {"beta_vae_score": 1.0, "beta_vae_train_accuracy": 1.0}
    assert f == {"factor_vae_score": 1.0, "factor_vae_train_accuracy": 1.0, "factor_vae_num_active_dims": 3.0}


@pytest.mark.parametrize("strategy", ["lookup", "naive"])
def test_noise_encoder_scores_near_chance(strategy):
    ds = OneHotRows((4, 5, 6, 7))
    b = beta_vae_score(ds, noise_encoder(1), 0, strategy=strategy, batch_size=16, num_train=400, num_eval=1500)
    f = factor_vae_score(
        ds, noise_encoder(2), 0, strategy=strategy, batch_size=16, num_train=400, num_eval=1500,
        num_variance_estimate=500,
    )
    assert abs(b["beta_vae_score"] - 0.25) < 0.06
    assert abs(f["factor_vae_score"] - 0.25) < 0.06
    assert f["factor_vae_num_active_dims"] == 5.0


def test_same_seed_same_score_and_seed_matters():
    ds = OneHotRows()
    runs = [
        (beta_vae_score(ds, Projection(ds), s, **SMALL), factor_vae_score(ds, Projection(ds), s, **SMALL))
        for s in (7, 7, 8)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    # a Generator is accepted as the seed and gives the same draws as default_rng(seed)
    assert factor_vae_score(ds, Projection(ds), np.random.default_rng(7), **SMALL) == runs[0][1]


def test_lookup_equals_naive_and_encodes_fewer_images():
    ds = OneHotRows()
    enc_l, enc_n = Projection(ds), Projection(ds)
    bl = beta_vae_score(ds, enc_l, 4, strategy="lookup", **SMALL)
    bn = beta_vae_score(ds, enc_n, 4, strategy="naive", **SMALL)
    assert bl == bn
    assert 0.3 < bl["beta_vae_score"] < 1.0  # a non-trivial score, so equality means something
    assert enc_l.images <= ds.num_samples
    assert enc_n.images == 2 * 16 * (300 + 300)

    enc_l, enc_n = Projection(ds), Projection(ds)
    fl = factor_vae_score(ds, enc_l, 4, strategy="lookup", num_variance_estimate=200, **SMALL)
    fn = factor_vae_score(ds, enc_n, 4, strategy="naive", num_variance_estimate=200, **SMALL)
    assert fl == fn
    assert 0.3 < fl["factor_vae_score"] < 1.0
    assert enc_l.images <= ds.num_samples
    assert enc_n.images == 200 + 16 * (300 + 300)


def test_auto_picks_lookup_on_a_grid_and_a_shared_cache_encodes_each_image_once():
    ds = OneHotRows()
    enc = Projection(ds)
    auto = beta_vae_score(ds, enc, 0, **SMALL)
    assert enc.images == ds.num_samples  # 19,200 draws over 60 images: each encoded once
    cache = CodeCache(ds, enc, encode_batch=7)
    before = enc.images
    assert beta_vae_score(ds, enc, 0, cache=cache, **SMALL) == auto
    assert factor_vae_score(ds, enc, 0, cache=cache, **SMALL) == factor_vae_score(ds, Projection(ds), 0, **SMALL)
    assert enc.images - before == ds.num_samples == cache.images_encoded == len(cache)


def test_draws_follow_dlib_semantics():
    ds = OneHotRows()
    labels, idx = draw_beta_vae_points(ds, np.random.default_rng(0), 50, 8)
    f1, f2 = ds.factors_of(idx[:, 0].reshape(-1)), ds.factors_of(idx[:, 1].reshape(-1))
    k = np.repeat(labels, 8)
    assert np.array_equal(f1[np.arange(k.size), k], f2[np.arange(k.size), k])
    assert set(labels) == {0, 1, 2}
    # dlib's order: k, then batch 1 factor by factor, then batch 2
    rng = np.random.default_rng(0)
    k0 = rng.integers(3)
    b1 = ds.sample_factors(8, rng)
    b2 = ds.sample_factors(8, rng)
    b2[:, k0] = b1[:, k0]
    assert labels[0] == k0 and np.array_equal(idx[0, 0], ds.index_of(b1)) and np.array_equal(idx[0, 1], ds.index_of(b2))

    labels, idx = draw_factor_vae_votes(ds, np.random.default_rng(1), 40, 8)
    for lab, row in zip(labels, idx):
        f = ds.factors_of(row)
        assert np.all(f[:, lab] == f[0, lab])


def test_majority_vote_known_answer():
    train = np.array([[3, 0, 1], [1, 2, 1]])  # dim 2 ties -> factor 0 (numpy argmax, as dlib)
    evals = np.array([[2, 1, 1], [0, 3, 2]])
    tr, ev = majority_vote_accuracy(train, evals)
    assert tr == pytest.approx((3 + 2 + 1) / 8)
    assert ev == pytest.approx((2 + 3 + 1) / 9)


def test_pruning_counts_really_active_dims_and_no_active_dims_scores_zero():
    ds = OneHotRows()

    def with_collapsed(x):
        z = oracle(x)
        return torch.cat([z, 0.001 * z[:, :1], torch.zeros(x.shape[0], 2)], dim=1)  # std 0.001*~0.8, and 0

    f = factor_vae_score(ds, with_collapsed, 0, **SMALL)
    assert f == {"factor_vae_score": 1.0, "factor_vae_train_accuracy": 1.0, "factor_vae_num_active_dims": 3.0}
    # threshold 0 still refuses zero-variance dims (their variance ratio is undefined)
    assert factor_vae_score(ds, with_collapsed, 0, prune_threshold=0.0, **SMALL)["factor_vae_num_active_dims"] == 4.0

    const = factor_vae_score(ds, lambda x: torch.zeros(x.shape[0], 4), 0, **SMALL)
    assert const == {"factor_vae_score": 0.0, "factor_vae_train_accuracy": 0.0, "factor_vae_num_active_dims": 0.0}


def test_torch_module_encoder_and_tuple_output():
    ds = OneHotRows()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 4))
    out = beta_vae_score(ds, net, 0, **SMALL)
    assert 0.0 <= out["beta_vae_score"] <= 1.0 and isinstance(out["beta_vae_score"], float)
    # the module is scored as the function it computes
    with torch.no_grad():
        assert beta_vae_score(ds, lambda x: net(x), 0, **SMALL) == out
    # an encoder returning (mean, logvar) is scored on the mean
    assert beta_vae_score(ds, lambda x: (oracle(x), torch.zeros(x.shape[0], 3)), 0, **SMALL)["beta_vae_score"] == 1.0


def test_non_grid_dataset_is_refused():
    ds = NotAGrid()
    with pytest.raises(UntwineError, match="full factor grid"):
        beta_vae_score(ds, oracle, 0, **SMALL)
    with pytest.raises(UntwineError, match="full factor grid"):
        factor_vae_score(ds, oracle, 0, **SMALL)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda ds: beta_vae_score(ds, oracle, 0, strategy="fast"), "strategy"),
        (lambda ds: factor_vae_score(ds, oracle, 0, batch_size=1), "batch_size"),
        (lambda ds: beta_vae_score(ds, oracle, -1), "seed"),
        (lambda ds: factor_vae_score(ds, oracle, 0, prune_threshold=-0.1), "prune_threshold"),
        (lambda ds: beta_vae_score(ds, lambda x: oracle(x)[:-1], 0, **SMALL), "rows"),
        (lambda ds: beta_vae_score(ds, lambda x: oracle(x) * np.nan, 0, **SMALL), "non-finite"),
        (lambda ds: beta_vae_score(ds, "not callable", 0, **SMALL), "callable"),
        (lambda ds: beta_vae_score(ds, oracle, 0, strategy="naive", cache=CodeCache(ds, oracle)), "cache"),
    ],
)
def test_bad_input_raises_one_clear_error(call, match):
    ds = OneHotRows()
    with pytest.raises(UntwineError, match=match):
        call(ds)


def test_single_class_training_set_is_refused():
    ds = OneHotRows()
    # a seed whose two training points happen to fix the same factor
    seed = next(s for s in range(100) if len(set(draw_beta_vae_points(ds, np.random.default_rng(s), 2, 4)[0])) == 1)
    with pytest.raises(UntwineError, match="num_train=2 is too small"):
        beta_vae_score(ds, oracle, seed, num_train=2, num_eval=5, batch_size=4)
