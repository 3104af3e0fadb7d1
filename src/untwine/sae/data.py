"""Activations streamed in shuffled batches, for training.

Sources are opened by the one reader of activations,
:func:`untwine.activations.reader.open_activations` (re-exported here with
:class:`~untwine.activations.reader.ActivationSource`).

:func:`iter_batches` shuffles at two levels so a data set larger than RAM trains with
bounded memory: each epoch visits contiguous *chunks* in a random order, loads a
*buffer* of chunks (at most ``buffer_bytes``) into memory with sequential reads (a
memory-mapped ``.npy``: asks the OS to read them ahead and gathers each batch from the
map, no copy), and serves batches in a random order of the buffer's rows; a data set that fits in one
buffer is fully shuffled every epoch.  The order depends only on the seed and the
position, so a resumed run skips the batches it already saw without reading them and
sees exactly the batches an uninterrupted run would.  Rows with NaN or infinite values
are one error line naming the row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from untwine.activations.reader import CHUNK_ROWS, ActivationSource, check_finite, open_activations

#: memory for one shuffle buffer
BUFFER_BYTES = 1 << 29


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
            if source.mapped:
                # memory-mapped files: each batch gathered from the map (a copy of the buffer
                # would fill fresh memory first, seconds for a few hundred MB on some machines)
                source.prefetch(ranges)
                rows = np.concatenate([np.arange(a, b) for a, b in ranges])
                rows_of = lambda positions: source.take(rows[positions])  # noqa: E731
            elif source.in_memory and len(ranges) == 1:
                # an in-memory array is checked once, not once per epoch
                data = source.read(*ranges[0], check=ranges[0] not in source.checked)
                source.checked.add(ranges[0])
                rows_of = data.__getitem__
            else:
                data = np.concatenate([source.read(a, b) for a, b in ranges]) if len(ranges) > 1 else source.read(*ranges[0])
                rows_of = data.__getitem__
            perm = np.random.default_rng([seed, epoch, bi]).permutation(n)[skip:]
            skip = 0
            pos = 0
            if carry is not None:
                need = batch_size - len(carry)
                take = perm[:need]
                batch = np.concatenate([carry, rows_of(take)])
                pos = len(take)
                if len(batch) < batch_size:
                    carry = batch
                    continue
                carry = None
                yield batch
            while pos + batch_size <= len(perm):
                yield rows_of(perm[pos : pos + batch_size])
                pos += batch_size
            if pos < len(perm):
                carry = rows_of(perm[pos:])
        epoch += 1



__all__ = ["BUFFER_BYTES", "CHUNK_ROWS", "ActivationSource", "check_finite", "fingerprint", "iter_batches",
           "open_activations", "sample_rows"]
