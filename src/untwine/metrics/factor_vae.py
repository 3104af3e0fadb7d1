"""The FactorVAE score (interventional; needs a ground-truth dataset and an encoder).

Reference: Kim & Mnih, "Disentangling by Factorising", ICML 2018;
disentanglement_lib ``evaluation.metrics.factor_vae.compute_factor_vae`` (with
``_prune_dims``).

Definition (with dlib's sampling semantics).  First the global variance of each
code dimension is estimated (``ddof=1``) on ``num_variance_estimate``
observations drawn uniformly from the grid.  A dimension is *active* when its
standard deviation is at least ``prune_threshold`` (dlib compares
``sqrt(variance) >= threshold``; dimensions of exactly zero variance are never
active, so the ratio below is always defined).  One *vote* is made by drawing a
factor index ``k`` uniformly and a batch of ``batch_size`` factor combinations
uniformly, setting factor ``k`` of the whole batch to its value in the first
row, encoding the batch and taking, among the active dimensions, the one of
least ``batch variance (ddof=1) / global variance``; the vote is
``(k, that dimension)``.  The majority-vote classifier maps each active
dimension to the factor with most training votes for it (ties and dimensions
without votes go to the lowest factor index, as ``numpy.argmax`` does in dlib);
the score is the fraction of the ``num_eval`` evaluation votes it classifies
correctly.  When no dimension is active every accuracy is 0, as in dlib.
Defaults are dlib's study settings: ``batch_size=64``, ``num_train=10000``,
``num_eval=5000``, ``num_variance_estimate=10000``, ``prune_threshold=0.05``.

``factor_vae_num_active_dims`` is the number of active dimensions (dlib reports
the total number of dimensions under that name: a known defect).

Random draws happen in dlib's order (variance batch, then per vote ``k`` then
the batch, factor by factor via ``dataset.sample_factors``), from
``numpy.random.default_rng(seed)`` rather than dlib's ``RandomState``.  Codes
are handled in float64.

Cost: dlib encodes ``num_variance_estimate + batch_size * (num_train +
num_eval)`` images (970,000 at the defaults).  On a full-grid dataset the
default ``strategy="auto"`` encodes each distinct image once instead (see
:mod:`untwine.metrics._encode_cache`); results are identical for a
deterministic encoder.  Datasets that are not full grids are refused.
"""

from __future__ import annotations

import math

import numpy as np

from untwine.errors import UntwineError
from untwine.metrics._encode_cache import (
    ENCODE_BATCH,
    CodeCache,
    check_grid_dataset,
    check_cache,
    check_positive_int,
    make_rng,
    make_source,
    points_per_chunk,
)

__all__ = ["factor_vae_score", "draw_factor_vae_votes", "majority_vote_accuracy"]


def draw_factor_vae_votes(dataset, rng: np.random.Generator, num_points: int, batch_size: int):
    """Draw the factor combinations of ``num_points`` FactorVAE votes.

    Returns ``(labels [num_points], indices [num_points, batch_size])``: the
    fixed factor of each vote and the flat grid indices of its batch.
    """
    num_factors = len(dataset.factor_sizes)
    labels = np.empty(num_points, dtype=np.int64)
    indices = np.empty((num_points, batch_size), dtype=np.int64)
    chunk = max(1, 65536 // batch_size)  # index_of once per chunk of points
    for start in range(0, num_points, chunk):
        stop = min(start + chunk, num_points)
        factors = np.empty((stop - start, batch_size, num_factors), dtype=np.int64)
        for i in range(stop - start):
            k = int(rng.integers(num_factors))
            factors[i] = dataset.sample_factors(batch_size, rng)
            factors[i, :, k] = factors[i, 0, k]
            labels[start + i] = k
        indices[start:stop] = dataset.index_of(factors.reshape(-1, num_factors)).reshape(stop - start, batch_size)
    return labels, indices


def _vote_dims(source, indices: np.ndarray, global_var: np.ndarray, active: np.ndarray, chunk: int) -> np.ndarray:
    """Active-dimension index (0..n_active-1) of least normalised variance per vote."""
    out = []
    for start in range(0, indices.shape[0], chunk):
        codes = source.codes(indices[start:start + chunk])[:, :, active]  # [p, batch, A]
        local = np.var(codes, axis=1, ddof=1)
        out.append(np.argmin(local / global_var[active], axis=1))
    return np.concatenate(out, axis=0)


def _votes_matrix(labels: np.ndarray, dims: np.ndarray, num_factors: int, num_dims: int) -> np.ndarray:
    votes = np.zeros((num_factors, num_dims), dtype=np.int64)
    np.add.at(votes, (labels, dims), 1)
    return votes


def majority_vote_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float]:
    """Train and eval accuracy of the majority-vote classifier of ``train_votes``.

    Both are ``[num_factors, num_dims]`` vote counts; each dimension is
    classified as the factor with most training votes (lowest index on ties).
    """
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(train_votes.shape[1])
    train_acc = float(train_votes[classifier, cols].sum() / train_votes.sum())
    eval_acc = float(eval_votes[classifier, cols].sum() / eval_votes.sum())
    return train_acc, eval_acc


def factor_vae_score(
    dataset,
    encoder,
    seed=0,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    prune_threshold: float = 0.05,
    encode_batch: int = ENCODE_BATCH,
    device="auto",
    strategy: str = "auto",
    cache: CodeCache | None = None,
) -> dict[str, float]:
    """FactorVAE score of ``encoder`` on a full-grid ``dataset``.

    ``encoder`` maps a float tensor ``[n, C, H, W]`` in [0, 1] to codes
    ``[n, D]``; ``seed`` is an int or a ``numpy.random.Generator``.
    ``strategy`` is ``"auto"``, ``"lookup"`` or ``"naive"``; ``cache`` (a
    :class:`~untwine.metrics._encode_cache.CodeCache` for the same dataset and
    encoder) shares encoded images with other metrics.  Returns
    ``{"factor_vae_score": eval accuracy, "factor_vae_train_accuracy": ...,
    "factor_vae_num_active_dims": ...}``.
    """
    check_grid_dataset(dataset, "FactorVAE score")
    if not callable(encoder):
        raise UntwineError("encoder must be a callable mapping an observation batch to codes")
    batch_size = check_positive_int(batch_size, "batch_size", 2)
    num_train = check_positive_int(num_train, "num_train")
    num_eval = check_positive_int(num_eval, "num_eval")
    num_variance_estimate = check_positive_int(num_variance_estimate, "num_variance_estimate", 2)
    encode_batch = check_positive_int(encode_batch, "encode_batch")
    try:
        threshold = float(prune_threshold)
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold) or threshold < 0:
        raise UntwineError(f"prune_threshold must be a finite number >= 0, got {prune_threshold!r}")
    check_cache(cache, dataset, encoder, strategy)
    rng = make_rng(seed)
    num_factors = len(dataset.factor_sizes)

    var_idx = dataset.index_of(dataset.sample_factors(num_variance_estimate, rng))
    train_labels, train_idx = draw_factor_vae_votes(dataset, rng, num_train, batch_size)
    eval_labels, eval_idx = draw_factor_vae_votes(dataset, rng, num_eval, batch_size)
    all_idx = np.concatenate([var_idx, train_idx.reshape(-1), eval_idx.reshape(-1)])
    source = make_source(
        dataset, encoder, all_idx, strategy=strategy, cache=cache, encode_batch=encode_batch, device=device
    )

    var_codes = np.concatenate(
        [source.codes(var_idx[s:s + encode_batch]) for s in range(0, var_idx.size, encode_batch)], axis=0
    )
    global_var = np.var(var_codes, axis=0, ddof=1)
    active = (np.sqrt(global_var) >= threshold) & (global_var > 0)
    num_active = int(active.sum())
    if num_active == 0:
        return {"factor_vae_score": 0.0, "factor_vae_train_accuracy": 0.0, "factor_vae_num_active_dims": 0.0}

    chunk = points_per_chunk(encode_batch, batch_size)
    train_dims = _vote_dims(source, train_idx, global_var, active, chunk)
    eval_dims = _vote_dims(source, eval_idx, global_var, active, chunk)
    train_votes = _votes_matrix(train_labels, train_dims, num_factors, num_active)
    eval_votes = _votes_matrix(eval_labels, eval_dims, num_factors, num_active)
    train_acc, eval_acc = majority_vote_accuracy(train_votes, eval_votes)
    return {
        "factor_vae_score": eval_acc,
        "factor_vae_train_accuracy": train_acc,
        "factor_vae_num_active_dims": float(num_active),
    }
