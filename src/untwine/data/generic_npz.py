"""A generic ground-truth ``.npz`` (``images`` + ``factors``), read by :func:`untwine.data.load`
like the named datasets' files of :mod:`untwine.data.dataset_files`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from untwine._checks import as_factors
from untwine.data.dataset_files import _PROBE, FileDataset, _classes, _grid_rows, _image_layout, _Npz, _strides
from untwine.errors import UntwineError


class GenericNpz(FileDataset):
    """An ``.npz`` with ``images`` [N, H, W(, C)], ``factors`` [N, K], optional ``factor_names``."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        npz = _Npz(self.path)
        npz.require("images", "factors")
        images = npz.array("images")
        self.observation_shape = _image_layout(self.path, images, "images", channels_last_required=False)
        raw_factors = npz.array("factors", mmap=False)
        if raw_factors.ndim == 1:
            raw_factors = raw_factors[:, None]
        if raw_factors.ndim != 2:
            raise UntwineError(f"{self.path}: 'factors' must be [N, K], got shape {tuple(raw_factors.shape)}")
        if raw_factors.shape[0] != images.shape[0]:
            raise UntwineError(f"{self.path}: 'images' has {images.shape[0]} rows but 'factors' has {raw_factors.shape[0]}")
        try:
            as_factors(raw_factors, f"{self.path}: factors", allow_constant=True)
        except UntwineError as exc:
            raise UntwineError(str(exc)) from None
        classes, values = _classes(np.asarray(raw_factors))
        k = classes.shape[1]
        if "factor_names" in npz.members:
            names = npz.array("factor_names", mmap=False)
            if names.dtype.kind not in "US" or names.reshape(-1).shape[0] != k:
                raise UntwineError(f"{self.path}: 'factor_names' must be {k} strings, got {names.dtype} of shape {names.shape}")
            self.factor_names = tuple(str(s.decode() if isinstance(s, bytes) else s) for s in names.reshape(-1))
        else:
            self.factor_names = tuple(f"factor_{i}" for i in range(k))
        self.factor_sizes = tuple(int(len(v)) for v in values)
        self.factor_values = tuple(values)
        self._classes = classes
        # value range: bool -> 0/1; uint8 -> /255 unless it only holds 0/1; floats in [0, 1]
        probe = np.asarray(images[: min(_PROBE, images.shape[0])])
        if images.dtype == np.bool_:
            self.binary = True
        elif images.dtype == np.uint8:
            self.binary = bool(probe.max(initial=0) <= 1)
            self._scale = 1.0 if self.binary else 1.0 / 255.0
        elif images.dtype.kind == "f":
            if probe.size and (not np.isfinite(probe).all() or probe.min() < 0 or probe.max() > 1):
                raise UntwineError(f"{self.path}: float 'images' must lie in [0, 1]")
            self.binary = bool(np.isin(probe, (0.0, 1.0)).all())
        else:
            raise UntwineError(f"{self.path}: 'images' must be uint8, bool or float in [0, 1], got {images.dtype}")
        self._images = images
        npz.zf.close()
        n = classes.shape[0]
        total = int(np.prod(self.factor_sizes, dtype=np.float64))
        keys = classes @ _strides(self.factor_sizes) if total < 2**62 else None
        full = keys is not None and total == n and np.unique(keys).shape[0] == n
        self._full = bool(full)
        if self._full:
            self._grid_to_row = _grid_rows(self.path, classes, self.factor_sizes)
        else:
            if keys is None:
                raise UntwineError(f"{self.path}: too many factor combinations ({total:.3g}) to index")
            order = np.argsort(keys, kind="stable")
            self._keys_sorted = keys[order]
            self._rows_sorted = order  # first occurrence of each key comes first (stable)

    @property
    def is_full_grid(self) -> bool:
        return self._full

    @property
    def num_samples(self) -> int:
        return int(self._classes.shape[0]) if not self._full else super().num_samples

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Full grid: uniform combinations' grid indices; otherwise ``n`` random rows."""
        if self._full:
            return super().sample_indices(n, rng)
        return rng.integers(0, self._classes.shape[0], size=n)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Full grid: uniform combinations; otherwise the factors of ``n`` random rows."""
        if self._full:
            return super().sample_factors(n, rng)
        return self._classes[self.sample_indices(n, rng)].copy()

    def observations_at(self, indices) -> torch.Tensor:
        if self._full:
            return super().observations_at(indices)
        return self.images_of_rows(self.check_indices(indices))

    def sample(self, n: int, rng: np.random.Generator):
        if self._full:
            return super().sample(n, rng)
        rows = self.sample_indices(n, rng)
        return self._classes[rows].copy(), self.images_of_rows(rows)

    def index_of(self, factors) -> np.ndarray:
        """Full grid: the grid index; otherwise the (first) row holding each combination."""
        if self._full:
            return super().index_of(factors)
        f = self.check_factors(factors)
        sizes = np.asarray(self.factor_sizes)
        if (f < 0).any() or (f >= sizes).any():
            raise UntwineError(f"{self.name}: factor values out of range for sizes {tuple(self.factor_sizes)}")
        keys = f @ _strides(self.factor_sizes)
        pos = np.searchsorted(self._keys_sorted, keys)
        pos_c = np.minimum(pos, len(self._keys_sorted) - 1)
        absent = self._keys_sorted[pos_c] != keys
        if absent.any():
            combo = tuple(int(v) for v in f[int(np.argmax(absent))])
            raise UntwineError(f"{self.path}: factor combination {combo} does not occur in the file (not a full grid)")
        return self._rows_sorted[pos_c]

    def factors_of(self, index) -> np.ndarray:
        if self._full:
            return super().factors_of(index)
        return self._classes[self.check_indices(index)].copy()

    def _rows_of(self, factors) -> np.ndarray:
        if self._full:
            return super()._rows_of(factors)
        return self.index_of(factors)
