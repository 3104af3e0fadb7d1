"""The BetaVAE score (interventional; needs a ground-truth dataset and an encoder).

Reference: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a
Constrained Variational Framework", ICLR 2017; disentanglement_lib
``evaluation.metrics.beta_vae.compute_beta_vae_sklearn``.

Definition (with dlib's sampling semantics).  One *point* is made by drawing a
factor index ``k`` uniformly, two batches of ``batch_size`` factor combinations
uniformly from the grid, copying factor ``k`` of the first batch into the
second, encoding both batches and taking the mean over the batch of the
absolute difference of the codes (a ``D``-vector); its label is ``k``.  A
logistic regression (scikit-learn's ``LogisticRegression`` with its default
settings, as dlib constructs it: L2, ``C=1``, lbfgs, 100 iterations,
unstandardised features) is fitted on ``num_train`` points and the score is its
accuracy on ``num_eval`` further points (drawn after the training points from
the same random stream).  Defaults are dlib's: ``batch_size=64``,
``num_train=10000``, ``num_eval=5000``.

Random draws per point happen in dlib's order (``k``, then batch 1, then batch
2, each batch factor by factor via ``dataset.sample_factors``), from
``numpy.random.default_rng(seed)`` rather than dlib's ``RandomState``.  Codes
are compared in float64.  Convergence warnings of the regression are silenced
(dlib's runs emitted them too); the regression is otherwise untouched.

Cost: dlib encodes ``2 * batch_size * (num_train + num_eval)`` images (1.92
million at the defaults).  On a full-grid dataset the default
``strategy="auto"`` encodes each distinct image once instead (see
:mod:`untwine.metrics._encode_cache`); results are identical for a
deterministic encoder.  Datasets that are not full grids are refused.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

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

__all__ = ["beta_vae_score", "draw_beta_vae_points"]


def draw_beta_vae_points(dataset, rng: np.random.Generator, num_points: int, batch_size: int):
    """Draw the factor combinations of ``num_points`` BetaVAE points.

    Returns ``(labels [num_points], indices [num_points, 2, batch_size])``: the
    fixed factor of each point and the flat grid indices of its two batches.
    """
    num_factors = len(dataset.factor_sizes)
    labels = np.empty(num_points, dtype=np.int64)
    indices = np.empty((num_points, 2, batch_size), dtype=np.int64)
    chunk = max(1, 65536 // (2 * batch_size))  # index_of once per chunk of points
    for start in range(0, num_points, chunk):
        stop = min(start + chunk, num_points)
        factors = np.empty((stop - start, 2, batch_size, num_factors), dtype=np.int64)
        for i in range(stop - start):
            k = int(rng.integers(num_factors))
            factors[i, 0] = dataset.sample_factors(batch_size, rng)
            factors[i, 1] = dataset.sample_factors(batch_size, rng)
            factors[i, 1, :, k] = factors[i, 0, :, k]
            labels[start + i] = k
        indices[start:stop] = dataset.index_of(factors.reshape(-1, num_factors)).reshape(stop - start, 2, batch_size)
    return labels, indices


def _features(source, indices: np.ndarray, chunk: int) -> np.ndarray:
    """Mean absolute code difference of each point's batch pair, ``[n, D]``."""
    out = []
    for start in range(0, indices.shape[0], chunk):
        codes = source.codes(indices[start:start + chunk])  # [p, 2, batch, D]
        out.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
    return np.concatenate(out, axis=0)


def beta_vae_score(
    dataset,
    encoder,
    seed=0,
    *,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    encode_batch: int = ENCODE_BATCH,
    device="auto",
    strategy: str = "auto",
    cache: CodeCache | None = None,
) -> dict[str, float]:
    """BetaVAE score of ``encoder`` on a full-grid ``dataset``.

    ``encoder`` maps a float tensor ``[n, C, H, W]`` in [0, 1] to codes
    ``[n, D]``; ``seed`` is an int or a ``numpy.random.Generator``.
    ``strategy`` is ``"auto"``, ``"lookup"`` or ``"naive"``; ``cache`` (a
    :class:`~untwine.metrics._encode_cache.CodeCache` for the same dataset and
    encoder) shares encoded images with other metrics.  Returns
    ``{"beta_vae_score": eval accuracy, "beta_vae_train_accuracy": ...}``.
    """
    check_grid_dataset(dataset, "BetaVAE score")
    if not callable(encoder):
        raise UntwineError("encoder must be a callable mapping an observation batch to codes")
    batch_size = check_positive_int(batch_size, "batch_size")
    num_train = check_positive_int(num_train, "num_train", 2)
    num_eval = check_positive_int(num_eval, "num_eval")
    encode_batch = check_positive_int(encode_batch, "encode_batch")
    check_cache(cache, dataset, encoder, strategy)
    rng = make_rng(seed)

    train_labels, train_idx = draw_beta_vae_points(dataset, rng, num_train, batch_size)
    eval_labels, eval_idx = draw_beta_vae_points(dataset, rng, num_eval, batch_size)
    if np.unique(train_labels).size < 2:
        raise UntwineError(
            f"num_train={num_train} is too small: every training point fixed the same factor, "
            "so no classifier can be fitted"
        )
    all_idx = np.concatenate([train_idx.reshape(-1), eval_idx.reshape(-1)])
    source = make_source(
        dataset, encoder, all_idx, strategy=strategy, cache=cache, encode_batch=encode_batch, device=device
    )
    chunk = points_per_chunk(encode_batch, 2 * batch_size)
    train_x = _features(source, train_idx, chunk)
    eval_x = _features(source, eval_idx, chunk)

    # lbfgs draws no random numbers; the seed is passed as dlib passes its random state.
    random_state = int(rng.integers(2**31 - 1)) if isinstance(seed, np.random.Generator) else int(seed) % 2**32
    model = LogisticRegression(random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_x, train_labels)
    train_acc = float(np.mean(model.predict(train_x) == train_labels))
    eval_acc = float(np.mean(model.predict(eval_x) == eval_labels))
    return {"beta_vae_score": eval_acc, "beta_vae_train_accuracy": train_acc}
