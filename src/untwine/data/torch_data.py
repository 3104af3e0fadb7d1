"""Feeding ground-truth datasets to PyTorch training loops.

Batches are rendered (or read) a whole batch at a time, never image by image, and the
stream is a pure function of ``(seed, step)``: batch ``i`` uses the generator
:func:`batch_rng` ``(seed, i)``, so

* the same seed gives the same stream, whatever ``num_workers``;
* training resumes exactly: ``make_loader(..., start_step=s)`` yields batches ``s, s+1, ...``
  identical to those an uninterrupted run would have seen at those steps.

API
---
``make_loader(dataset, batch_size, seed=0, *, start_step=0, num_steps=None, num_workers=0,
pin_memory=False)`` -> ``torch.utils.data.DataLoader``
    Iterating yields ``(x, factors)``: ``x`` float32 ``[B, C, H, W]`` in [0, 1] and
    ``factors`` int64 ``[B, K]``, for steps ``start_step, start_step+1, ...`` (endless when
    ``num_steps`` is None, else ``num_steps`` batches; ``len()`` is then defined).  Each
    batch draws ``batch_size`` factor combinations uniformly (rows uniformly for datasets
    that are not full grids) with :meth:`GroundTruthDataset.sample`.  With
    ``num_workers > 0`` worker ``w`` renders steps ``start+w, start+w+W, ...`` in
    background processes, and the loader returns them in step order.

``GroundTruthBatches(dataset, batch_size, seed=0, start_step=0, num_steps=None)``
    The ``IterableDataset`` behind ``make_loader``; ``.batch(step)`` renders one batch.

``batch_rng(seed, step)`` -> ``np.random.Generator``
    The generator of batch ``step`` (``np.random.default_rng([seed, step])``).

``GridDataset(dataset)``
    Map-style ``Dataset`` over the flat index (grid index, or row for non-grid files):
    ``ds[i]`` is ``(x [C, H, W], factors [K])``; ``ds.__getitems__(indices)`` renders a
    list of indices as one batch (used by ``DataLoader`` with automatic batching), so
    epoch-style shuffling over the grid also renders whole batches.

Speed, one core (``benchmarks/render_speed.py``): see ``benchmarks/results/render_speed.json``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from untwine.data.base import GroundTruthDataset
from untwine.errors import UntwineError


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The random generator of batch ``step`` of the stream with ``seed``."""
    if seed < 0 or step < 0:
        raise UntwineError(f"seed and step must be non-negative, got seed={seed}, step={step}")
    return np.random.default_rng([int(seed), int(step)])


class GroundTruthBatches(IterableDataset):
    """An endless (or ``num_steps`` long) stream of whole batches; see the module docstring."""

    def __init__(
        self,
        dataset: GroundTruthDataset,
        batch_size: int,
        seed: int = 0,
        start_step: int = 0,
        num_steps: int | None = None,
    ) -> None:
        if not isinstance(dataset, GroundTruthDataset):
            raise UntwineError(f"expected a GroundTruthDataset, got {type(dataset).__name__}")
        if int(batch_size) < 1:
            raise UntwineError(f"batch_size must be at least 1, got {batch_size}")
        if int(start_step) < 0:
            raise UntwineError(f"start_step must be non-negative, got {start_step}")
        if num_steps is not None and int(num_steps) < 0:
            raise UntwineError(f"num_steps must be non-negative, got {num_steps}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.num_steps = None if num_steps is None else int(num_steps)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number ``step``: ``(x [B, C, H, W] float32, factors [B, K] int64)``."""
        factors, x = self.dataset.sample(self.batch_size, batch_rng(self.seed, step))
        return x, torch.from_numpy(np.ascontiguousarray(factors, dtype=np.int64))

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("endless stream (num_steps=None) has no length")
        return self.num_steps

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.start_step + worker
        end = None if self.num_steps is None else self.start_step + self.num_steps
        while end is None or step < end:
            yield self.batch(step)
            step += workers


def make_loader(
    dataset: GroundTruthDataset,
    batch_size: int,
    seed: int = 0,
    *,
    start_step: int = 0,
    num_steps: int | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` of ``(x, factors)`` batches, deterministic and resumable by step."""
    if int(num_workers) < 0:
        raise UntwineError(f"num_workers must be non-negative, got {num_workers}")
    stream = GroundTruthBatches(dataset, batch_size, seed, start_step, num_steps)
    kwargs = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": 4, "persistent_workers": False}
    return DataLoader(stream, batch_size=None, num_workers=int(num_workers), pin_memory=pin_memory, **kwargs)


class GridDataset(Dataset):
    """Map-style view of a dataset by flat index; batches render in one call."""

    def __init__(self, dataset: GroundTruthDataset) -> None:
        if not isinstance(dataset, GroundTruthDataset):
            raise UntwineError(f"expected a GroundTruthDataset, got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return self.dataset.num_samples

    def _batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        f = self.dataset.factors_of(idx)
        rows_reader = getattr(self.dataset, "images_of_rows", None)
        if not self.dataset.is_full_grid and rows_reader is not None:
            return rows_reader(idx), torch.from_numpy(f)  # rows may repeat a combination
        return self.dataset.observations(f), torch.from_numpy(f)

    def __getitem__(self, index: int):
        x, f = self._batch([index])
        return x[0], f[0]

    def __getitems__(self, indices):
        x, f = self._batch(indices)
        return list(zip(x, f))
