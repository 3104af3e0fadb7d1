"""Activations on disk, streamed in shuffled batches.

Sources (:func:`open_activations`):

* ``.npy``: memory-mapped (``np.load(mmap_mode="r")``), never read whole;
* ``.safetensors``: one 2-D tensor (``FILE.safetensors:NAME`` picks one of several), read
  by slices;
* a directory of shards: every ``*.npy`` / ``*.safetensors`` in it, in name order, treated
  as one array (same number of columns); a layer directory of ``untwine lm activations``
  (``manifest.json``) reads the shards its manifest lists, tensor ``activations``;
* an in-memory array (Python API).

:func:`iter_batches` shuffles at two levels so a data set larger than RAM trains with
bounded memory: each epoch visits contiguous *chunks* in a random order, loads a
*buffer* of chunks (at most ``buffer_bytes``) into memory with sequential reads, and
serves batches in a random order of the buffer's rows; a data set that fits in one
buffer is fully shuffled every epoch.  The order depends only on the seed and the
position, so a resumed run skips the batches it already saw without reading them and
sees exactly the batches an uninterrupted run would.  Rows with NaN or infinite values
are one error line naming the row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from untwine.errors import UntwineError

#: rows per contiguous chunk of the shuffled stream
CHUNK_ROWS = 1 << 16
#: memory for one shuffle buffer
BUFFER_BYTES = 1 << 29


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


class ActivationSource:
    """Rows ``[N, d]`` of activations, readable by contiguous ranges or row indices."""

    def __init__(self, parts: list[_Part], dim: int, name: str):
        self.parts, self.dim, self.name = parts, int(dim), name
        self.rows = sum(p.rows for p in parts)
        self._starts = np.array([p.start for p in parts], dtype=np.int64)
        self.in_memory = all(p.kind == "numpy" and not isinstance(p.array, np.memmap) for p in parts)
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

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows at (sorted) global indices ``rows`` as float32."""
        rows = np.asarray(rows, dtype=np.int64)
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
        if key is None:
            two_d = [n for n in names if len(fh.get_slice(n).get_shape()) == 2]
            if len(two_d) != 1:
                raise UntwineError(
                    f"{path}: holds {len(two_d)} 2-D tensors ({', '.join(two_d) or 'none'}); pick one with {path}:NAME"
                )
            key = two_d[0]
        if key not in names:
            raise UntwineError(f"{path}: no tensor named {key!r} (it has: {', '.join(names)})")
        sl = fh.get_slice(key)
        shape = sl.get_shape()
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise UntwineError(f"{path}:{key}: expected a 2-D tensor [rows, dim], got shape {tuple(shape)}")
        return sl, int(shape[0]), int(shape[1]), "safetensors"
    raise UntwineError(f"{path}: activations must be .npy, .safetensors or a directory of them")


def _shard_manifest(path: Path) -> dict | None:
    """The ``manifest.json`` of an ``untwine lm activations`` layer directory, if any."""
    p = path / "manifest.json"
    if not p.is_file():
        return None
    from untwine.files import read_json

    m = read_json(p, what="activation manifest")
    return m if isinstance(m, dict) and m.get("format") == "untwine-activations" else None


def open_activations(source, key: str | None = None) -> ActivationSource:
    """An :class:`ActivationSource` for a path (file or shard directory) or an array."""
    if isinstance(source, ActivationSource):
        return source
    if not isinstance(source, (str, Path)):
        if hasattr(source, "detach"):
            source = source.detach().cpu().numpy()
        arr = _numpy_part(np.asarray(source), "activations")
        return ActivationSource([_Part(arr, 0, arr.shape[0], "numpy")], arr.shape[1], "activations")
    text = str(source)
    path = Path(text)
    if not path.exists() and ":" in text:
        head, _, tail = text.rpartition(":")
        if Path(head).is_file():
            path, key = Path(head), tail
    if path.is_dir():
        manifest = _shard_manifest(path)
        if manifest is not None:  # untwine lm activations: the shards the manifest lists, in order
            files = [path / sh["file"] for sh in manifest.get("shards", [])]
            key = key or "activations"
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


#: rows hashed by :func:`fingerprint`: this many at the start, the middle and the end
FINGERPRINT_ROWS = 256


def fingerprint(source: ActivationSource) -> dict:
    """What identifies training data: its name, size on disk, shape and a hash of
    :data:`FINGERPRINT_ROWS` contiguous rows at its start, middle and end (cheap for any source)."""
    import hashlib

    h = hashlib.sha256()
    n, k = source.rows, FINGERPRINT_ROWS
    for a in sorted({0, max(0, n // 2 - k // 2), max(0, n - k)}):
        h.update(np.ascontiguousarray(source.read(a, min(n, a + k)), dtype="<f4").tobytes())
    size = 0
    for p in source.parts:
        fn = getattr(p.array, "filename", None)
        size += Path(fn).stat().st_size if isinstance(fn, str) and Path(fn).is_file() else 0
    return {"path": source.name, "bytes": int(size), "rows": int(n), "dim": int(source.dim),
            "sample_sha256": h.hexdigest()[:32]}


def sample_rows(source: ActivationSource, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` rows drawn without replacement (seeded), float32."""
    rng = np.random.default_rng([seed, 7])
    if source.rows <= n:
        return source.read(0, source.rows)
    rows = np.sort(rng.choice(source.rows, size=n, replace=False))
    return source.take(rows)


def iter_batches(
    source: ActivationSource,
    batch_size: int,
    *,
    seed: int,
    skip_batches: int = 0,
    chunk_rows: int = CHUNK_ROWS,
    buffer_bytes: int = BUFFER_BYTES,
) -> Iterator[np.ndarray]:
    """Endless shuffled float32 batches ``[batch_size, d]`` (see the module docstring)."""
    chunks = source.chunks(chunk_rows)
    buf_rows = max(batch_size, buffer_bytes // (4 * source.dim))
    skip = int(skip_batches) * int(batch_size)
    carry: np.ndarray | None = None
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(len(chunks))
        buffers: list[list[tuple[int, int]]] = [[]]
        size = 0
        for c in order:
            a, b = chunks[c]
            if size and size + (b - a) > buf_rows:
                buffers.append([])
                size = 0
            buffers[-1].append((a, b))
            size += b - a
        for bi, ranges in enumerate(buffers):
            n = sum(b - a for a, b in ranges)
            if skip >= n:
                skip -= n
                continue
            if source.in_memory and len(ranges) == 1:
                # an in-memory array is checked once, not once per epoch
                data = source.read(*ranges[0], check=ranges[0] not in source.checked)
                source.checked.add(ranges[0])
            else:
                data = np.concatenate([source.read(a, b) for a, b in ranges]) if len(ranges) > 1 else source.read(*ranges[0])
            perm = np.random.default_rng([seed, epoch, bi]).permutation(n)[skip:]
            skip = 0
            pos = 0
            if carry is not None:
                need = batch_size - len(carry)
                take = perm[:need]
                batch = np.concatenate([carry, data[take]])
                pos = len(take)
                if len(batch) < batch_size:
                    carry = batch
                    continue
                carry = None
                yield batch
            while pos + batch_size <= len(perm):
                yield data[perm[pos : pos + batch_size]]
                pos += batch_size
            if pos < len(perm):
                carry = data[perm[pos:]]
        epoch += 1

