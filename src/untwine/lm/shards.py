"""Activation shards on disk: one directory per layer, safetensors shards and a manifest.

Layout of a layer directory (written by :class:`ShardWriter`, read by
:func:`read_activations`)::

    layer_3/
      manifest.json            {"format": "untwine-activations", "version": 1,
                                "dim": 384, "dtype": "float32", "rows": 2160,
                                "shards": [{"file": "shard_00000.safetensors", "rows": 512}, ...],
                                ...run metadata (model, layer, pool, corpus)...}
      shard_00000.safetensors  tensor "activations" [rows, dim] float32,
                               tensor "sentence" [rows] int64 (corpus row of each activation row)
      shard_00001.safetensors  ...

Rows are the concatenation of the shards in manifest order.  Each shard is written
atomically before the manifest that lists it, so a directory always holds a readable
prefix of the rows; a shard not (yet) in the manifest is ignored.

:func:`read_activations` also reads single files, so every command that takes
activations (``ACTS``) accepts: a layer directory, a ``.safetensors`` file (the tensor
``activations``, or its only tensor), or ``.npy`` / ``.npz`` / ``.csv`` / ``.tsv``
(:func:`untwine.io.read_array`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes, read_json, write_json

FORMAT = "untwine-activations"
VERSION = 1
MANIFEST = "manifest.json"
TENSOR = "activations"
ROWS_TENSOR = "sentence"


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.safetensors"


def read_manifest(layer_dir) -> dict | None:
    """The manifest of ``layer_dir``, or None when there is none."""
    p = Path(layer_dir) / MANIFEST
    if not p.is_file():
        return None
    m = read_json(p, what="activation manifest")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise UntwineError(f"{p}: not an untwine activation manifest (format {FORMAT!r} expected)")
    return m


class ShardWriter:
    """Append row blocks to a layer directory as shards, updating the manifest after each.

    ``meta`` is stored in the manifest next to the shard list.  Reopening a directory
    whose manifest holds the same ``meta`` continues after its last shard; a manifest
    with different ``meta`` is refused (one error line) unless ``overwrite``.
    """

    def __init__(self, layer_dir, meta: dict, *, overwrite: bool = False) -> None:
        self.dir = Path(layer_dir)
        self.meta = dict(meta)
        old = read_manifest(self.dir)
        if old is not None and not overwrite and old.get("meta") != self.meta:
            raise UntwineError(
                f"{self.dir} holds activations of a different run (model, layer, pooling or corpus differ); "
                "choose another --out or delete it"
            )
        if old is None or overwrite:
            self.manifest = {"format": FORMAT, "version": VERSION, "dim": None, "dtype": "float32",
                             "rows": 0, "complete": False, "meta": self.meta, "shards": []}
        else:
            self.manifest = old

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def append(self, acts: np.ndarray, sentence: np.ndarray, **entry) -> None:
        """Write one shard of rows ``acts [rows, dim]`` (corpus row of each: ``sentence``); ``entry`` is kept in its manifest entry."""
        from safetensors.numpy import save

        acts = np.ascontiguousarray(acts, dtype=np.float32)
        sentence = np.ascontiguousarray(sentence, dtype=np.int64)
        if acts.ndim != 2 or sentence.shape != (acts.shape[0],):
            raise UntwineError(f"activation block must be [rows, dim] with one corpus row each, got {acts.shape}")
        dim = self.manifest["dim"]
        if dim is not None and acts.shape[1] != dim:
            raise UntwineError(f"{self.dir}: block has {acts.shape[1]} columns but earlier shards have {dim}")
        name = shard_name(len(self.manifest["shards"]))
        atomic_write_bytes(self.dir / name, save({TENSOR: acts, ROWS_TENSOR: sentence}))
        self.manifest["dim"] = int(acts.shape[1])
        self.manifest["shards"].append({"file": name, "rows": int(acts.shape[0]), **entry})
        self.manifest["rows"] = self.rows + int(acts.shape[0])
        write_json(self.dir / MANIFEST, self.manifest)

    def finish(self, **extra) -> None:
        self.manifest.update(extra)
        self.manifest["complete"] = True
        write_json(self.dir / MANIFEST, self.manifest)


def _read_safetensors(p: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UntwineError(f"{p}: cannot read as safetensors ({str(exc).splitlines()[0] if str(exc) else 'corrupt'})") from None


def read_layer(layer_dir, *, with_rows: bool = False):
    """Every row of a layer directory ``[N, D]`` float32 (and the corpus row of each with ``with_rows``)."""
    d = Path(layer_dir)
    m = read_manifest(d)
    if m is None:
        raise UntwineError(f"{d}: no {MANIFEST}; expected an activation directory written by `untwine lm activations`")
    acts, rows = [], []
    for s in m.get("shards", []):
        t = _read_safetensors(d / s["file"]) if (d / s["file"]).is_file() else None
        if t is None or TENSOR not in t:
            raise UntwineError(f"{d}: shard {s['file']} listed in the manifest is missing or has no {TENSOR!r} tensor")
        acts.append(t[TENSOR])
        rows.append(t.get(ROWS_TENSOR, np.full(t[TENSOR].shape[0], -1, dtype=np.int64)))
    if not acts:
        raise UntwineError(f"{d}: holds no activation rows yet")
    a = np.concatenate(acts)
    return (a, np.concatenate(rows)) if with_rows else a


def read_activations(path, key: str | None = None) -> np.ndarray:
    """Activations ``[N, D]`` from a layer directory, a ``.safetensors`` file or an array file (module docstring)."""
    p = Path(path)
    if p.is_dir():
        return read_layer(p)
    if p.suffix.lower() == ".safetensors":
        if not p.is_file():
            raise UntwineError(f"{p}: no such file")
        tensors = _read_safetensors(p)
        name = key or (TENSOR if TENSOR in tensors else None)
        if name is None:
            if len(tensors) != 1:
                raise UntwineError(f"{p}: holds tensors {', '.join(sorted(tensors))}; name one with --key")
            name = next(iter(tensors))
        if name not in tensors:
            raise UntwineError(f"{p}: no tensor named {name!r}; available: {', '.join(sorted(tensors))}")
        return tensors[name]
    from untwine.io import read_array

    return read_array(p, key)


__all__ = ["FORMAT", "MANIFEST", "ShardWriter", "read_activations", "read_layer", "read_manifest", "shard_name"]
