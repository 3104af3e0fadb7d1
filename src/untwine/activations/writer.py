"""Writing an activations folder from any model: shards of every layer, resumable.

:func:`write_layers` turns a function that computes activations of a range of inputs into
one layer folder per layer (:class:`untwine.activations.shards.ShardWriter`): inputs
``0..items`` are processed in chunks of ``chunk``; each chunk becomes one shard per layer,
written atomically and then recorded in the layer's manifest (size, SHA-256, rows and the
range of inputs it covers).  Calling it again on the same folder with the same metadata
continues after the last chunk every layer holds: the shards written so far are checked
against their manifests and recomputed from the first that does not check out, and the
temporary files of a killed run are deleted, so the result is bit-identical to an
uninterrupted run.  :meth:`ActivationFolder.write_tables
<untwine.activations.layout.ActivationFolder.write_tables>` then writes the row tables and
the summary.  ``untwine lm activations`` (:mod:`untwine.lm.activations`) is one caller.

The manifests count inputs under the key ``sentences`` (their format predates other inputs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from untwine.activations.layout import layer_name

#: ``compute(start, stop, layers) -> ({layer: float32 [rows, dim]}, input index of each row [rows])``
Compute = Callable[[int, int, list], tuple[dict, np.ndarray]]


def write_layers(out, metas: dict, compute: Compute, *, items: int, chunk: int,
                 started: Callable[[int], None] | None = None) -> tuple[int, np.ndarray]:
    """Write the shards of every layer of ``metas`` (``{layer: manifest metadata}``) under ``out``.

    ``compute(start, stop, layers)`` returns the activations of inputs ``start:stop`` for
    ``layers`` and the input index of each row (module docstring); ``started(first)`` is told
    the first input still to compute.  Returns ``(first, rows)``: the inputs found done on
    disk and the input index of every row (of the first layer).
    """
    from untwine.activations.shards import ShardWriter, layer_rows
    from untwine.files import remove_stray_temporaries

    out = Path(out)
    remove_stray_temporaries(out)
    writers = {layer: ShardWriter(out / layer_name(layer), {**meta, "sentences": int(items), "chunk": int(chunk)})
               for layer, meta in metas.items()}

    def done_of(w) -> int:
        return int(w.manifest["shards"][-1]["sentences"][1]) if w.manifest["shards"] else 0

    first = min(done_of(w) for w in writers.values())
    if started is not None:
        started(first)
    for s in range(first, items, chunk):
        e = min(items, s + chunk)
        todo = [layer for layer in writers if done_of(writers[layer]) < e]
        blocks, rows = compute(s, e, todo)
        for layer in todo:
            writers[layer].append(blocks[layer], rows, sentences=[s, e])
    for w in writers.values():
        if not w.complete:
            w.finish()
    rows = layer_rows(out / layer_name(next(iter(writers))))  # one shard in memory at a time
    return first, rows


__all__ = ["Compute", "write_layers"]
