"""The layout of an activations folder: every file name, in one place (:class:`ActivationFolder`).

An activations folder (written by ``untwine lm activations`` and ``untwine activations``,
see :func:`untwine.activations.writer.write_layers`)::

    OUT/activations.json   summary: the writing ``command``, model, layers, pooling, inputs
                           (corpus or dataset), rows, factor names and sizes,
                           ``layer_dirs`` {layer: folder name}; written last
    OUT/layer_L/           one layer's shards + manifest.json (:mod:`untwine.activations.shards`)
    OUT/rows.npy           input item (sentence, image) of each activation row, int64 [rows]
    OUT/factors.npy        the known factors of each activation row [rows, K] (when known)
    OUT/sentences.txt      text inputs (corpus), one sentence per line
    OUT/inputs.npy         dataset inputs: the dataset's flat index of each input item, int64 [items]
    OUT/positions.npy      ``positions`` pooling: the spatial position of each row, int64 [rows, axes]

Every module that reads or writes such a folder takes the names from here.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from untwine.errors import UntwineError

#: the folder's summary, written when every layer is complete
SUMMARY = "activations.json"
#: input item (sentence) of each activation row
ROWS = "rows.npy"
#: the known factors of each activation row
FACTORS = "factors.npy"
#: the inputs, one per line
TEXTS = "sentences.txt"
#: the dataset flat index of each input item (inputs drawn from a ground-truth dataset)
INPUTS = "inputs.npy"
#: the spatial position of each activation row (one row per position of a convolutional map)
POSITIONS = "positions.npy"
#: a layer folder's shard list (:mod:`untwine.activations.shards`)
MANIFEST = "manifest.json"
#: ``format`` of a layer manifest
FORMAT = "untwine-activations"
#: the activation tensor of a shard ``[rows, dim]`` float32
TENSOR = "activations"
#: the input item of each row in a shard ``[rows]`` int64
ROWS_TENSOR = "sentence"
#: what a folder may hold besides its layer folders and temporaries
OWN_FILES = (SUMMARY, ROWS, FACTORS, TEXTS, INPUTS, POSITIONS)
LAYER_PREFIX = "layer_"
#: the command that writes a folder whose records do not name one (folders of untwine <= 0.x)
DEFAULT_COMMAND = "untwine lm activations"


def writing_command(meta) -> str:
    """The command that wrote a folder or layer, from its summary or manifest ``meta`` (key ``command``)."""
    cmd = meta.get("command") if isinstance(meta, dict) else None
    return cmd if isinstance(cmd, str) and cmd else DEFAULT_COMMAND


def layer_name(layer) -> str:
    """The folder name of ``layer`` (``layer_3``)."""
    return f"{LAYER_PREFIX}{layer}"


def shard_name(i: int) -> str:
    """The file name of a layer's ``i``-th shard."""
    return f"shard_{i:05d}.safetensors"


def _is_shard_file(name: str) -> bool:
    """Whether ``name`` is a shard or a temporary file a killed write left (a layer folder killed
    between its first shard and its first manifest holds only these)."""
    return (name.startswith("shard_") and name.endswith(".safetensors")) or (name.startswith(".") and name.endswith(".tmp"))


def npy_bytes(a: np.ndarray) -> bytes:
    """``a`` as the bytes of a ``.npy`` file (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


class ActivationFolder:
    """An activations folder ``path`` (module docstring): its layers and row tables.

    ``command`` names the command that writes it, for error messages.
    """

    def __init__(self, path, *, command: str = DEFAULT_COMMAND) -> None:
        self.path = Path(path)
        self.command = command

    # -- recognising -------------------------------------------------------------------------
    @staticmethod
    def is_folder(path) -> bool:
        """Whether ``path`` is an activations folder (holds :data:`SUMMARY`)."""
        return Path(path).is_dir() and (Path(path) / SUMMARY).is_file()

    @staticmethod
    def is_layer(path) -> bool:
        """Whether ``path`` is a layer folder (holds :data:`MANIFEST`)."""
        return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()

    @classmethod
    def of_layer(cls, layer_dir) -> ActivationFolder | None:
        """The folder holding layer folder ``layer_dir``, or None when ``layer_dir`` is no layer folder."""
        p = Path(str(layer_dir))
        return cls(p.parent) if cls.is_layer(p) else None

    # -- reading -----------------------------------------------------------------------------
    def layer_dir(self, layer) -> Path:
        return self.path / layer_name(layer)

    def summary(self) -> dict:
        from untwine.files import read_json

        return read_json(self.path / SUMMARY, what="activation summary")

    def layer_dirs(self) -> dict[int | str, Path]:
        """``{layer: folder}`` of every layer the summary lists (an integer layer as ``int``)."""
        dirs = self.summary().get("layer_dirs") or {}
        if not isinstance(dirs, dict) or not dirs:
            raise UntwineError(f"{self.path}/{SUMMARY} lists no layers")
        return {int(k) if str(k).isdigit() else str(k): self.path / v for k, v in dirs.items()}

    def context(self) -> dict[str, Any]:
        """What the folder knows about its rows: ``factor_names`` / ``factor_sizes`` (the
        summary), ``sentences`` and ``rows`` (:data:`TEXTS`, :data:`ROWS`), and for dataset inputs
        ``images`` (``dataset``: as the summary names it, ``inputs``: :data:`INPUTS`, ``positions``:
        :data:`POSITIONS` or None, ``grid``) and ``rows``; missing files are left out."""
        from untwine.files import read_json

        out: dict[str, Any] = {}
        info, meta = self.path / SUMMARY, None
        if info.is_file():
            meta = read_json(info, what="activation summary")
            if isinstance(meta, dict) and meta.get("factor_names"):
                out["factor_names"] = [str(n) for n in meta["factor_names"]]
                out["factor_sizes"] = [int(s) for s in meta.get("factor_sizes") or []] or None
        if (self.path / TEXTS).is_file() and (self.path / ROWS).is_file():
            out["sentences"] = (self.path / TEXTS).read_text(encoding="utf-8").splitlines()
            out["rows"] = np.load(self.path / ROWS)
        if (self.path / INPUTS).is_file() and (self.path / ROWS).is_file() and isinstance(meta, dict):
            pos = self.path / POSITIONS
            out["images"] = {"dataset": meta.get("dataset"), "inputs": np.load(self.path / INPUTS),
                             "positions": np.load(pos) if pos.is_file() else None, "grid": meta.get("grid") or None}
            out["rows"] = np.load(self.path / ROWS)
        return out

    # -- writing -----------------------------------------------------------------------------
    def check_own(self) -> None:
        """Refuse an existing folder that holds something this layout does not name."""
        if not self.path.is_dir():
            return
        for p in self.path.iterdir():
            own = p.name in OWN_FILES or (p.name.startswith(".") and p.name.endswith(".tmp"))
            own = own or (p.is_dir() and p.name.startswith(LAYER_PREFIX)
                          and (p.name[len(LAYER_PREFIX):].isdigit() or (p / MANIFEST).is_file()
                               or all(_is_shard_file(c.name) for c in p.iterdir())))
            if not own:
                raise UntwineError(f"--out {self.path} holds {p.name}, which `{self.command}` did not write; "
                                   "choose a new or empty folder")

    def check_same_run(self, expect: dict) -> None:
        """Refuse the folder when its summary describes a run whose ``expect`` keys differ."""
        from untwine.files import read_json

        p = self.path / SUMMARY
        if not p.is_file():
            return
        old = read_json(p, what="activations summary")
        if not isinstance(old, dict):
            raise UntwineError(f"{p} is not an activations summary; choose a new or empty --out")
        differ = [k for k, v in expect.items() if old.get(k) != v]
        if differ:
            raise UntwineError(f"--out {self.path} holds activations of a different run ({', '.join(differ)} "
                               f"{'differs' if len(differ) == 1 else 'differ'}); "
                               "choose another --out or delete it")

    def write_tables(self, rows: np.ndarray, summary: dict, *, layers, factors=None, texts=None, inputs=None,
                     positions=None) -> dict:
        """Write the row tables and, last, the summary (``summary`` plus ``layer_dirs``); returns it.

        ``rows``: the input item of each activation row; ``factors``: the factors of each input
        item ``[items, K]`` (written for each row); ``texts``: the inputs, one line each;
        ``inputs``: the dataset flat index of each input item; ``positions``: each row's position.
        """
        from untwine.files import atomic_write_bytes, atomic_write_text, write_json

        rows = np.asarray(rows).astype(np.int64)
        atomic_write_bytes(self.path / ROWS, npy_bytes(rows))
        if factors is not None:
            atomic_write_bytes(self.path / FACTORS, npy_bytes(np.asarray(factors)[rows]))
        if texts is not None:
            atomic_write_text(self.path / TEXTS, "".join(s.replace("\n", " ") + "\n" for s in texts))
        if inputs is not None:
            atomic_write_bytes(self.path / INPUTS, npy_bytes(np.asarray(inputs).astype(np.int64)))
        if positions is not None:
            atomic_write_bytes(self.path / POSITIONS, npy_bytes(np.asarray(positions).astype(np.int64)))
        summary = {**summary, "layer_dirs": {str(layer): layer_name(layer) for layer in layers}}
        write_json(self.path / SUMMARY, summary)
        return summary


__all__ = ["DEFAULT_COMMAND", "FACTORS", "FORMAT", "INPUTS", "MANIFEST", "OWN_FILES", "POSITIONS", "ROWS", "ROWS_TENSOR", "SUMMARY",
           "TENSOR", "TEXTS",
           "ActivationFolder", "layer_name", "npy_bytes", "shard_name", "writing_command"]
