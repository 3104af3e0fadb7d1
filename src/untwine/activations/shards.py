"""Activation shards on disk: one directory per layer, safetensors shards and a manifest.

Layout of a layer directory (names in :mod:`untwine.activations.layout`; written by
:class:`ShardWriter`, read by :func:`read_layer` and :func:`untwine.activations.reader.open_activations`)::

    layer_3/
      manifest.json            {"format": "untwine-activations", "version": 1,
                                "dim": 384, "dtype": "float32", "rows": 2160,
                                "shards": [{"file": "shard_00000.safetensors", "rows": 512,
                                            "bytes": 786520, "sha256": "..."}, ...],
                                ...run metadata (model, layer, pool, corpus)...}
      shard_00000.safetensors  tensor "activations" [rows, dim] float32,
                               tensor "sentence" [rows] int64 (corpus row of each activation row)
      shard_00001.safetensors  ...

Rows are the concatenation of the shards in manifest order.  Each shard is written
atomically before the manifest that lists it, so a directory always holds a readable
prefix of the rows; a shard not (yet) in the manifest is ignored.  The manifest records
each shard's size and SHA-256: reading a layer checks every shard against it (and the row
counts against the tensors), so a truncated or altered shard, or a manifest whose row
counts lie, is one error line, never silently read; reopening the directory to resume
keeps the shards that check out and recomputes from the first one that does not (with a
``warning:`` line), and deletes temporary and unlisted files a killed run left behind.

Every command that takes activations (``ACTS``) reads them with
:mod:`untwine.activations.reader`, which also reads single files and directories of
other shards.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from untwine.errors import UntwineError, UntwineWarning
from untwine.files import atomic_write_bytes, read_json, remove_stray_temporaries, write_json

from untwine.activations.layout import FORMAT, MANIFEST, ROWS_TENSOR, TENSOR, shard_name, writing_command

VERSION = 1


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
        if self.dir.exists() and not self.dir.is_dir():
            raise UntwineError(f"{self.dir} is a file; expected an activation directory")
        old = read_manifest(self.dir)
        if old is not None and not overwrite and old.get("meta") != self.meta:
            raise UntwineError(
                f"{self.dir} holds activations of a different run (model, layer, pooling, corpus or chunk differ); "
                "choose another --out or delete it"
            )
        if old is None or overwrite:
            self.manifest = {"format": FORMAT, "version": VERSION, "dim": None, "dtype": "float32",
                             "rows": 0, "complete": False, "meta": self.meta, "shards": []}
        else:
            self.manifest = old
            self._keep_verified()
        self._remove_unlisted()

    def _keep_verified(self) -> None:
        """Keep the manifest's longest prefix of shards that check out (see :func:`shard_problem`)."""
        shards = self.manifest.get("shards")
        if not isinstance(shards, list):
            shards = []
        good, rows, problem = [], 0, None
        for entry in shards:
            problem = shard_problem(self.dir, entry, self.manifest, start=_end(good))
            if problem is not None:
                break
            good.append(entry)
            rows += int(entry["rows"])
        if problem is not None or rows != self.manifest.get("rows"):
            where = f"sentence {_end(good)}" if good else "the start"
            why = problem or f"the manifest lists {self.manifest.get('rows')} rows but its shards hold {rows}"
            warnings.warn(f"{self.dir}: {why}; recomputing from {where}", UntwineWarning, stacklevel=3)
            self.manifest.update(shards=good, rows=rows, complete=False)
            if not good:
                self.manifest["dim"] = None
            write_json(self.dir / MANIFEST, self.manifest)

    def _remove_unlisted(self) -> None:
        """Delete temporary files of killed writes and shards the manifest does not list."""
        remove_stray_temporaries(self.dir)
        if not self.dir.is_dir():
            return
        listed = {e["file"] for e in self.manifest["shards"]}
        for p in self.dir.glob("shard_*.safetensors"):
            if p.name not in listed:
                p.unlink(missing_ok=True)

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
        data = save({TENSOR: acts, ROWS_TENSOR: sentence})
        atomic_write_bytes(self.dir / name, data)
        self.manifest["dim"] = int(acts.shape[1])
        self.manifest["shards"].append({"file": name, "rows": int(acts.shape[0]), "bytes": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest(), **entry})
        self.manifest["rows"] = self.rows + int(acts.shape[0])
        write_json(self.dir / MANIFEST, self.manifest)

    def finish(self, **extra) -> None:
        self.manifest.update(extra)
        self.manifest["complete"] = True
        write_json(self.dir / MANIFEST, self.manifest)


def _end(entries: list) -> int:
    """The sentence after the last of ``entries`` (0 when empty)."""
    return int(entries[-1]["sentences"][1]) if entries and "sentences" in entries[-1] else 0


def _load_shard(d: Path, entry, manifest: dict) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The tensors of one manifest entry, or ``(None, why it does not check out)``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("rows"), int):
        return None, f"manifest entry {entry!r} is malformed"
    name, p = entry["file"], d / entry["file"]
    if Path(name).name != name or not p.is_file():
        return None, f"shard {name} listed in the manifest is missing"
    data = p.read_bytes()
    if "bytes" in entry and len(data) != entry["bytes"]:
        return None, (f"shard {name} holds {len(data)} bytes but the manifest lists {entry['bytes']} "
                      "(truncated or altered)")
    if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None, f"shard {name} does not match its SHA-256 in the manifest (damaged)"
    try:
        from safetensors.numpy import load

        t = load(data)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a damaged shard
        why = str(exc).splitlines()[0] if str(exc) else "corrupt"
        return None, f"shard {name} cannot be read as safetensors ({why})"
    a = t.get(TENSOR)
    if a is None or a.ndim != 2 or a.dtype != np.float32:
        return None, f"shard {name} has no float32 [rows, dim] {TENSOR!r} tensor"
    if a.shape[0] != entry["rows"]:
        return None, f"shard {name} holds {a.shape[0]} rows but the manifest lists {entry['rows']}"
    if manifest.get("dim") is not None and a.shape[1] != manifest["dim"]:
        return None, f"shard {name} has {a.shape[1]} columns but the manifest says dim {manifest['dim']}"
    rows = t.get(ROWS_TENSOR)
    if rows is not None and rows.shape != (a.shape[0],):
        return None, f"shard {name} has {rows.shape} sentence indices for {a.shape[0]} rows"
    return t, None


def shard_problem(d, entry, manifest: dict, *, start: int | None = None) -> str | None:
    """Why manifest ``entry`` of layer directory ``d`` does not check out (file present, size,
    SHA-256, readable, row count, width, sentence range starting at ``start``), or None."""
    return _checked_shard(Path(d), entry, manifest, start)[1]


def _checked_shard(d: Path, entry, manifest: dict, start: int | None) -> tuple[dict | None, str | None]:
    t, why = _load_shard(d, entry, manifest)
    if why is not None:
        return None, why
    span = entry.get("sentences")
    if span is not None and start is not None:
        meta = manifest.get("meta") or {}
        n, chunk = meta.get("sentences"), meta.get("chunk")
        ok = (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)
              and span[0] == start and span[0] < span[1]
              and (n is None or span[1] <= n) and (chunk is None or span[1] - span[0] <= chunk))
        if not ok:
            return None, f"shard {entry['file']} covers sentences {span}, expected a range starting at {start}"
        rows = t.get(ROWS_TENSOR)
        if rows is not None and rows.size and (rows.min() < span[0] or rows.max() >= span[1]):
            return None, f"shard {entry['file']} holds rows of sentences outside {span}"
    return t, None


def check_layer(layer_dir, *, keep: bool = False) -> list[tuple[Path, dict | None]]:
    """Check every shard of a layer directory against its manifest (module docstring): one error
    line for the first that does not check out, a warning when its run is unfinished.  Returns
    each shard's path and, with ``keep``, its tensors (else None: one shard in memory at a time)."""
    d = Path(layer_dir)
    m = read_manifest(d)
    if m is None:
        raise UntwineError(f"{d}: no {MANIFEST}; expected an activation directory written by `untwine activations` "
                           "or `untwine lm activations`")
    again = f"run the same `{writing_command(m.get('meta'))}` command again"
    out, rows = [], 0
    shards = m.get("shards")
    if not isinstance(shards, list):
        raise UntwineError(f"{d / MANIFEST}: malformed manifest (no list of shards)")
    start = 0
    for s in shards:
        t, why = _checked_shard(d, s, m, start)
        if why is not None:
            raise UntwineError(f"{d}: {why}; {again} to repair it")
        rows += t[TENSOR].shape[0]
        out.append((d / s["file"], t if keep else None))
        start = _end([s]) if "sentences" in s else None
    if not out:
        raise UntwineError(f"{d}: holds no activation rows yet")
    total = (m.get("meta") or {}).get("sentences") if isinstance(m.get("meta"), dict) else None
    if isinstance(total, int) and _end(shards) < total:
        warnings.warn(f"{d}: the run that writes it is unfinished ({_end(shards)} of {total} sentences so far); "
                      f"{again} to complete it",
                      UntwineWarning, stacklevel=3)
    if m.get("rows") != rows:
        raise UntwineError(f"{d / MANIFEST}: lists {m.get('rows')} rows but its shards hold {rows}; "
                           f"{again} to repair it")
    return out


def layer_rows(layer_dir) -> np.ndarray:
    """The input item of every row of a layer directory ``[N]`` int64, every shard checked against the
    manifest (:func:`check_layer`) with one shard in memory at a time (the activations are not kept)."""
    from safetensors import safe_open

    out = []
    for path, _ in check_layer(layer_dir):
        with safe_open(str(path), framework="numpy") as fh:
            if ROWS_TENSOR in fh.keys():
                out.append(fh.get_tensor(ROWS_TENSOR).astype(np.int64))
            else:
                out.append(np.full(fh.get_slice(TENSOR).get_shape()[0], -1, dtype=np.int64))
    return np.concatenate(out)


def read_layer(layer_dir, *, with_rows: bool = False):
    """Every row of a layer directory ``[N, D]`` float32 (and the corpus row of each with ``with_rows``);
    every shard is checked against the manifest (:func:`check_layer`)."""
    tensors = [t for _, t in check_layer(layer_dir, keep=True)]
    a = np.concatenate([t[TENSOR] for t in tensors])
    if not with_rows:
        return a
    rows = [t.get(ROWS_TENSOR, np.full(t[TENSOR].shape[0], -1, dtype=np.int64)) for t in tensors]
    return a, np.concatenate(rows)


__all__ = ["FORMAT", "MANIFEST", "VERSION", "ShardWriter", "check_layer", "layer_rows", "read_layer", "read_manifest", "shard_name", "shard_problem"]
