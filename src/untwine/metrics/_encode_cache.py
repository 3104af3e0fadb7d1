"""Encoding ground-truth observations for the interventional metrics.

The BetaVAE and FactorVAE scores draw factor combinations, render them and pass
the images through an encoder; with disentanglement_lib's defaults that is about
three million images.  On a full-grid dataset an observation is a function of
its flat grid index, so every draw can be a lookup instead: the metric first
draws all the factor combinations it needs (with exactly the random stream the
per-draw version uses), then :class:`CodeCache` renders and encodes each
*distinct* image once, in large batches, and the metric indexes the codes.  For a
deterministic encoder the result is identical to encoding every draw.

Two strategies are offered by the metrics:

* ``"lookup"``: codes come from a :class:`CodeCache` (shareable between metrics,
  so the BetaVAE and FactorVAE scores together encode at most the whole grid);
* ``"naive"``: every drawn observation is rendered and encoded, in batches of
  about ``encode_batch`` images (what disentanglement_lib does, 64 at a time);
* ``"auto"``: lookup when it encodes fewer images than the draws, else naive.

Observations are rendered with ``dataset.observations(factors)`` and no random
generator, so each grid index is one fixed image.  For the dSprites variants
with random colour or noise this differs from disentanglement_lib, which draws
a fresh colour / noise background from the metric's random state at every draw:
untwine uses the dataset's fixed per-image colour / noise instead (which is what
makes the lookup exact), and the metric's random stream holds factor draws only.

An *encoder* is any callable mapping a float32 tensor ``[n, C, H, W]`` with
values in [0, 1] to codes ``[n, D]`` (torch tensor or numpy array).  It is
called under ``torch.no_grad()``.  It should be deterministic (a model in eval
mode, posterior means); a stochastic encoder gets one draw per distinct image
under the lookup strategy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from untwine._checks import as_codes
from untwine.errors import UntwineError

Encoder = Callable[[torch.Tensor], object]

STRATEGIES = ("auto", "lookup", "naive")
#: images per encoder call when filling a cache: small enough that a conv encoder's largest
#: activation (128 x 32 x 32 x 32 float32 = 16 MiB for disentanglement_lib's) is recycled by
#: the allocator instead of mapped and unmapped for every batch (see untwine._memory); the
#: codes do not depend on it
ENCODE_BATCH = 128


def resolve_device(encoder, device) -> torch.device:
    """Device the observation batches are moved to before calling ``encoder``.

    ``"auto"``: the device of the encoder's parameters when it is a
    ``torch.nn.Module`` with parameters, else the CPU (a plain callable moves
    data itself).  Any other value is passed to :class:`torch.device`.
    """
    if device is None or device == "auto":
        if isinstance(encoder, torch.nn.Module):
            for p in encoder.parameters():
                return p.device
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UntwineError(f"device: cannot use {device!r} ({exc})") from None


def check_grid_dataset(dataset, metric: str) -> None:
    """Refuse datasets the interventional metrics cannot sample from."""
    for attr in ("factor_sizes", "sample_factors", "observations", "index_of", "factors_of"):
        if not hasattr(dataset, attr):
            raise UntwineError(f"{metric}: dataset must be a GroundTruthDataset (missing {attr!r})")
    if not getattr(dataset, "is_full_grid", False):
        name = getattr(dataset, "name", type(dataset).__name__)
        raise UntwineError(
            f"{metric} needs a full factor grid (every combination of factor values) to fix one factor "
            f"and resample the others; dataset {name!r} is not a full grid"
        )
    if len(dataset.factor_sizes) < 2:
        raise UntwineError(f"{metric} needs at least 2 factors, dataset has {len(dataset.factor_sizes)}")


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UntwineError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise UntwineError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    return strategy


def make_rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UntwineError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def run_encoder(encoder: Encoder, x: torch.Tensor, device: torch.device) -> np.ndarray:
    """Call ``encoder`` on one batch and return validated float64 codes ``[n, D]``."""
    n = x.shape[0]
    with torch.no_grad():
        out = encoder(x.to(device))
    if isinstance(out, tuple) and len(out) > 0 and len(getattr(out[0], "shape", ())) == 2:
        out = out[0]  # (mean, logvar) style encoders: use the mean
    codes = as_codes(out, "encoder output")
    if codes.shape[0] != n:
        raise UntwineError(f"encoder output has {codes.shape[0]} rows for a batch of {n} observations")
    return codes


def encode_factors(dataset, encoder: Encoder, factors: np.ndarray, *, encode_batch: int, device, advance=None) -> np.ndarray:
    """Render ``factors`` ``[n, K]`` and encode them in batches of ``encode_batch``
    (``advance(n)`` after each batch of ``n`` images)."""
    out = []
    for start in range(0, factors.shape[0], encode_batch):
        x = dataset.observations(factors[start:start + encode_batch])
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        out.append(run_encoder(encoder, x.float(), device))
        if advance is not None:
            advance(x.shape[0])
    return np.concatenate(out, axis=0)


class CodeCache:
    """Codes of grid observations by flat index, each image encoded at most once.

    ``CodeCache(dataset, encoder, encode_batch=ENCODE_BATCH, device="auto", advance=None)``;
    :meth:`codes` returns the codes of any array of flat indices, encoding the
    indices not seen before in batches of ``encode_batch`` images.  A table of one
    int32 per grid cell maps a flat index to its row of codes (3 MB for dSprites),
    so a lookup is one indexing operation; the codes grow with the number of
    distinct images encoded (at most the grid).  ``images_encoded`` counts the
    images passed through the encoder.

    Pass one cache to both :func:`~untwine.metrics.beta_vae.beta_vae_score`
    and :func:`~untwine.metrics.factor_vae.factor_vae_score` (``cache=``) to
    share the encoding between them.
    """

    def __init__(self, dataset, encoder: Encoder, *, encode_batch: int = ENCODE_BATCH, device="auto", advance=None):
        check_grid_dataset(dataset, "CodeCache for the BetaVAE/FactorVAE scores")
        if not callable(encoder):
            raise UntwineError("encoder must be a callable mapping an observation batch to codes")
        self.dataset = dataset
        self.encoder = encoder
        self.encode_batch = check_positive_int(encode_batch, "encode_batch")
        self.device = resolve_device(encoder, device)
        self._row = np.full(int(dataset.num_samples), -1, dtype=np.int32)  # flat index -> row of _codes
        self._codes = np.zeros((0, 0))
        self.images_encoded = 0
        self.advance = advance  #: called with the number of images after each encoded batch

    def __len__(self) -> int:
        return self.images_encoded

    def missing(self, indices) -> np.ndarray:
        """Sorted distinct flat indices among ``indices`` not encoded yet."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return np.unique(idx[self._row[idx] < 0])

    def add(self, indices) -> None:
        """Encode the distinct indices among ``indices`` that are not cached."""
        new = self.missing(indices)
        if new.size == 0:
            return
        codes = encode_factors(
            self.dataset, self.encoder, self.dataset.factors_of(new), encode_batch=self.encode_batch, device=self.device,
            advance=self.advance,
        )
        if self.images_encoded and codes.shape[1] != self._codes.shape[1]:
            raise UntwineError(
                f"encoder output changed width from {self._codes.shape[1]} to {codes.shape[1]} columns"
            )
        self._row[new] = np.arange(self.images_encoded, self.images_encoded + new.size, dtype=np.int32)
        self._codes = codes if not self.images_encoded else np.concatenate([self._codes, codes], axis=0)
        self.images_encoded += int(new.size)

    def codes(self, indices) -> np.ndarray:
        """Codes ``[*indices.shape, D]`` (float64) of the given flat indices."""
        idx = np.asarray(indices, dtype=np.int64)
        self.add(idx)
        return self._codes[self._row[idx.reshape(-1)]].reshape(*idx.shape, self._codes.shape[1])


class CodeSource:
    """What a metric gets its codes from: a lookup cache or naive per-draw encoding.

    Built by :func:`make_source` after the metric has drawn all its flat indices.
    ``codes(indices)`` returns ``[*indices.shape, D]`` float64 codes.
    """

    def __init__(self, dataset, encoder, *, cache: CodeCache | None, encode_batch: int, device):
        self.dataset = dataset
        self.encoder = encoder
        self.cache = cache
        self.encode_batch = encode_batch
        self.device = device
        self.strategy = "lookup" if cache is not None else "naive"

    def codes(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        if self.cache is not None:
            return self.cache.codes(idx)
        flat = encode_factors(
            self.dataset,
            self.encoder,
            self.dataset.factors_of(idx.reshape(-1)),
            encode_batch=self.encode_batch,
            device=self.device,
        )
        return flat.reshape(*idx.shape, flat.shape[1])


def check_cache(cache, dataset, encoder, strategy: str) -> None:
    """Validate ``strategy`` and an optional shared ``cache`` before any work."""
    check_strategy(strategy)
    if cache is None:
        return
    if not isinstance(cache, CodeCache):
        raise UntwineError(f"cache must be a CodeCache or None, got {type(cache).__name__}")
    if strategy == "naive":
        raise UntwineError("strategy='naive' encodes every draw and cannot use a cache; pass cache=None")
    if cache.dataset is not dataset or cache.encoder is not encoder:
        raise UntwineError("cache was built for a different dataset or encoder")


def make_source(
    dataset, encoder, all_indices: np.ndarray, *, strategy: str, cache: CodeCache | None, encode_batch: int, device
) -> CodeSource:
    """Pick the strategy (see module docstring) and, for lookup, fill the cache."""
    check_cache(cache, dataset, encoder, strategy)
    if cache is not None:
        strategy = "lookup"
    if strategy == "auto":
        distinct = np.unique(all_indices).size
        strategy = "lookup" if distinct < all_indices.size else "naive"
    dev = resolve_device(encoder, device)
    if strategy == "lookup":
        if cache is None:
            cache = CodeCache(dataset, encoder, encode_batch=encode_batch, device=dev)
        cache.add(all_indices)
        return CodeSource(dataset, encoder, cache=cache, encode_batch=encode_batch, device=dev)
    return CodeSource(dataset, encoder, cache=None, encode_batch=encode_batch, device=dev)


def points_per_chunk(encode_batch: int, images_per_point: int) -> int:
    """How many metric points to process together (about ``encode_batch`` images)."""
    return max(1, encode_batch // images_per_point)
