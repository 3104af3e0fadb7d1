"""The one reader of activations: every command that takes ``ACTS`` reads them here.

Sources (:func:`open_activations`, streamed; :func:`read_activations`, in memory):

* a layer directory of an activations folder (``manifest.json``,
  :mod:`untwine.activations.shards`): the shards its manifest lists, tensor ``activations``,
  each checked against the manifest (size, SHA-256, rows) before any row is used;
* a directory of other shards: every ``*.npy`` / ``*.safetensors`` in it, in name order,
  treated as one array (same number of columns);
* ``.npy``: memory-mapped (``np.load(mmap_mode="r")``), never read whole by the stream;
* ``.safetensors``: the tensor ``activations``, else its only 2-D tensor, read by slices;
* ``.npz`` / ``.csv`` / ``.tsv`` (:func:`untwine.arrays.read_array`), read whole;
* an in-memory array (Python API).

A tensor or array inside a file is named either way, both parsed in one place
(:func:`untwine.arrays.split_key`): ``FILE:NAME`` (``acts.safetensors:resid``) or the
``key`` argument, the ``--key NAME`` option of the commands that have it; ``FILE:NAME``
wins when both are given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from untwine.activations.layout import MANIFEST, TENSOR
from untwine.errors import UntwineError

#: rows per contiguous chunk of the shuffled stream
CHUNK_ROWS = 1 << 16


@dataclass
class _Part:
    array: object  # np.ndarray / memmap, or a safetensors slice
    start: int  # global row of its first row
    rows: int
    kind: str  # "numpy" | "safetensors"

    def read(self, a: int, b: int) -> np.ndarray:
        if self.kind == "numpy":
            out = np.asarray(self.array[a:b])
        else:
            out = self.array[a:b].float().numpy()
        return out

    def whole(self) -> np.ndarray:
        """Every row in the stored dtype (bfloat16, which numpy lacks, as float32)."""
        if self.kind == "numpy":
            return np.array(self.array) if isinstance(self.array, np.memmap) else self.array
        t = self.array[0 : self.rows]
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()


class ActivationSource:
    """Rows ``[N, d]`` of activations, readable by contiguous ranges or row indices."""

    def __init__(self, parts: list[_Part], dim: int, name: str):
        self.parts, self.dim, self.name = parts, int(dim), name
        self.rows = sum(p.rows for p in parts)
        self._starts = np.array([p.start for p in parts], dtype=np.int64)
        self.in_memory = all(p.kind == "numpy" and not isinstance(p.array, np.memmap) for p in parts)
        #: every part a memory-mapped file: rows are gathered from the map where they lie
        self.mapped = all(isinstance(p.array, np.memmap) for p in parts)
        self.checked: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return self.rows

    def chunks(self, chunk_rows: int = CHUNK_ROWS) -> list[tuple[int, int]]:
        """Contiguous global row ranges, none crossing a shard boundary."""
        out = []
        for p in self.parts:
            for a in range(0, p.rows, chunk_rows):
                out.append((p.start + a, p.start + min(p.rows, a + chunk_rows)))
        return out

    def array(self) -> np.ndarray:
        """Every row in memory, in the stored dtype (not checked for NaN: for whole-array measures)."""
        pieces = [p.whole() for p in self.parts]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def read(self, start: int, stop: int, *, check: bool = True) -> np.ndarray:
        """Rows ``start:stop`` as float32 (within one shard when from :meth:`chunks`)."""
        pieces = []
        i = int(np.searchsorted(self._starts, start, side="right") - 1)
        pos = start
        while pos < stop:
            p = self.parts[i]
            b = min(stop, p.start + p.rows)
            pieces.append(p.read(pos - p.start, b - p.start))
            pos, i = b, i + 1
        out = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        out = np.ascontiguousarray(out, dtype=np.float32)
        if not out.flags.writeable:  # memory-mapped rows: copy out of the map
            out = out.copy()
        if check:
            check_finite(out, self.name, start)
        return out

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Ask the OS to read the memory-mapped files' rows in ``ranges`` (global, each within
        one part) ahead, in sequence, so that gathering them later finds them in memory."""
        if not hasattr(os, "posix_fadvise"):
            return
        for a, b in ranges:
            i = int(np.searchsorted(self._starts, a, side="right") - 1)
            p = self.parts[i]
            if not isinstance(p.array, np.memmap) or not isinstance(p.array.filename, str):
                continue
            row = p.array.strides[0]
            fd = os.open(p.array.filename, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, p.array.offset + (a - p.start) * row, (b - a) * row, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows at global indices ``rows`` (in any order) as float32, checked for NaN."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.parts) == 1 and self.parts[0].kind == "numpy":
            out = np.asarray(self.parts[0].array[rows], dtype=np.float32)
            check_finite(out, self.name, None, rows)
            return out
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        which = np.searchsorted(self._starts, rows, side="right") - 1
        for i in np.unique(which):
            sel = which == i
            p = self.parts[int(i)]
            local = rows[sel] - p.start
            if p.kind == "numpy":
                out[sel] = p.array[local]
            else:  # read the chunks that hold the rows (bounded memory), not the whole shard
                dest = np.flatnonzero(sel)
                block_of = local // CHUNK_ROWS
                for c in np.unique(block_of):
                    a = int(c) * CHUNK_ROWS
                    block = p.read(a, min(p.rows, a + CHUNK_ROWS))
                    here = block_of == c
                    out[dest[here]] = block[local[here] - a]
        check_finite(out, self.name, None, rows)
        return out


def check_finite(x: np.ndarray, name: str, start: int | None, rows: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        r = int(np.argwhere(bad.any(axis=1))[0][0])
        row = start + r if start is not None else int(rows[r]) if rows is not None else r
        raise UntwineError(f"{name}: row {row} has non-finite values (NaN or inf); clean the activations first")


def _numpy_part(arr, name: str) -> np.ndarray:
    if arr.ndim != 2:
        raise UntwineError(f"{name}: expected a 2-D array [rows, dim] of activations, got shape {tuple(arr.shape)}")
    if arr.dtype.kind not in "fiu":
        raise UntwineError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UntwineError(f"{name}: array is empty (shape {tuple(arr.shape)})")
    return arr


def _open_file(path: Path, key: str | None) -> tuple[object, int, int, str]:
    if path.suffix == ".npy":
        if path.stat().st_size == 0:
            raise UntwineError(f"{path}: the file is empty (0 bytes), not a .npy array")
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise UntwineError(f"{path}: cannot read as .npy ({exc})") from None
        if not isinstance(arr, np.ndarray):  # np.load opens a zip (.npz) whatever its name
            if hasattr(arr, "close"):
                arr.close()
            raise UntwineError(f"{path}: is an .npz archive, not a .npy array; save the activations with np.save")
        arr = _numpy_part(arr, str(path))
        return arr, arr.shape[0], arr.shape[1], "numpy"
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            fh = safe_open(str(path), framework="pt")
            names = list(fh.keys())
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; report any as one line
            raise UntwineError(f"{path}: cannot read as .safetensors ({exc})") from None
        if key is None and TENSOR in names:
            key = TENSOR
        if key is None:
            two_d = [n for n in names if len(fh.get_slice(n).get_shape()) == 2]
            if len(two_d) != 1:
                raise UntwineError(
                    f"{path}: holds {len(two_d)} 2-D tensors ({', '.join(two_d) or 'none'}); "
                    f"name one with --key NAME or {path}:NAME"
                )
            key = two_d[0]
        if key not in names:
            raise UntwineError(f"{path}: no tensor named {key!r} (it has: {', '.join(names)})")
        sl = fh.get_slice(key)
        shape = sl.get_shape()
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise UntwineError(f"{path}:{key}: expected a 2-D tensor [rows, dim], got shape {tuple(shape)}")
        return sl, int(shape[0]), int(shape[1]), "safetensors"
    from untwine.arrays import SUPPORTED_EXTENSIONS, read_array

    if path.suffix.lower() in SUPPORTED_EXTENSIONS:  # .npz, .csv, .tsv: read whole
        arr = _numpy_part(read_array(path, key), str(path))
        return arr, arr.shape[0], arr.shape[1], "numpy"
    raise UntwineError(f"{path}: activations must be .npy, .safetensors, .npz, .csv, .tsv or a directory of shards")


def open_activations(source, key: str | None = None) -> ActivationSource:
    """An :class:`ActivationSource` for a path (file or directory, module docstring) or an array."""
    if isinstance(source, ActivationSource):
        return source
    if not isinstance(source, (str, Path)):
        if hasattr(source, "detach"):
            source = source.detach().cpu().numpy()
        arr = _numpy_part(np.asarray(source), "activations")
        return ActivationSource([_Part(arr, 0, arr.shape[0], "numpy")], arr.shape[1], "activations")
    from untwine.arrays import split_key

    path, key = split_key(source, key)
    if path.is_dir():
        if (path / MANIFEST).is_file():  # a layer directory: the shards its manifest lists, checked
            from untwine.activations.shards import check_layer

            files = [f for f, _ in check_layer(path)]
            key = key or TENSOR
        else:
            files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".safetensors") and not p.name.startswith("."))
        if not files:
            raise UntwineError(f"{path}: directory holds no .npy or .safetensors shards")
    elif path.is_file():
        files = [path]
    else:
        raise UntwineError(f"activations not found: {path}")
    parts, dim, start = [], None, 0
    for f in files:
        arr, rows, d, kind = _open_file(f, key)
        if dim is None:
            dim = d
        elif d != dim:
            raise UntwineError(f"{f}: has {d} columns but {files[0]} has {dim}; shards must match")
        parts.append(_Part(arr, start, rows, kind))
        start += rows
    return ActivationSource(parts, dim, str(source))


def read_activations(source, key: str | None = None) -> np.ndarray:
    """Every row of ``source`` in memory ``[N, D]`` in its stored dtype (:func:`open_activations`)."""
    return open_activations(source, key).array()


__all__ = ["CHUNK_ROWS", "ActivationSource", "check_finite", "open_activations", "read_activations"]
