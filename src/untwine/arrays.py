"""Reading user arrays (codes, factors) from files.

Supported formats, chosen by the file extension:

* ``.npy`` -- one array (pickled object arrays are refused);
* ``.npz`` -- its only array, or the one named by ``key`` (``--key K``) or as
  ``archive.npz:K`` (:func:`split_key`, the one parser of both syntaxes, also used by
  :mod:`untwine.activations.reader`); an archive of several arrays without a key is
  refused: taking the first one silently could score an array against itself;
* ``.csv`` / ``.tsv`` -- numbers separated by commas / tabs, one row per line.
  A first line that does not parse as numbers is taken as a header row and
  skipped.  Blank lines and lines starting with ``#`` are ignored.

Every failure (missing or unreadable file, unknown key, unknown extension,
a non-numeric cell) raises :class:`untwine.errors.UntwineError` with one line
that names the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.files import read_text

#: extensions :func:`read_array` understands
SUPPORTED_EXTENSIONS = (".npy", ".npz", ".csv", ".tsv")


def _parse_text(path: Path, delimiter: str) -> np.ndarray:
    text = read_text(path)

    rows: list[list[float]] = []
    first_data_line = True
    width = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        cells = [c.strip() for c in stripped.split(delimiter)]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            if first_data_line:  # header row
                first_data_line = False
                continue
            bad = next(c for c in cells if not _is_float(c))
            raise UntwineError(f"{path}: line {lineno} has a non-numeric value {bad!r}") from None
        first_data_line = False
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise UntwineError(
                f"{path}: line {lineno} has {len(values)} columns but earlier lines have {width}"
            )
        rows.append(values)
    if not rows:
        raise UntwineError(f"{path}: no numeric rows found")
    arr = np.asarray(rows, dtype=np.float64)
    # keep integer columns integer so factors read from text stay class indices
    if np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and np.abs(arr).max() < 2**53:
        arr = arr.astype(np.int64)
    return arr


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def split_key(path: str | os.PathLike, key: str | None = None) -> tuple[Path, str | None]:
    """The one parser of the two ways to name an array inside a file: ``FILE:NAME`` is read as
    ``(FILE, NAME)`` when ``FILE`` is an existing file and the whole name is not (``NAME`` then
    wins over ``key``, the ``--key NAME`` option); any other ``path`` is ``(path, key)``."""
    s = os.fspath(path)
    if not os.path.exists(s) and ":" in s:
        base, _, tail = s.rpartition(":")
        if tail and os.path.isfile(base):
            return Path(base), tail
    return Path(s), key


def read_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read one numeric array from ``path`` (``.npy``, ``.npz``, ``.csv``, ``.tsv``).

    ``key`` selects the array of an ``.npz`` archive (required when it holds several);
    ``archive.npz:key`` in the path does the same for one file.  ``key`` is
    ignored for the other formats.  Shape and value checks are left to
    :mod:`untwine._checks`.
    """
    p, key = split_key(path, key)
    ext = p.suffix.lower()
    if p != Path(os.fspath(path)) and ext != ".npz":
        raise UntwineError(f"{path}: FILE:NAME names an array inside an .npz archive; {p.name} holds one array")
    if ext not in SUPPORTED_EXTENSIONS:
        raise UntwineError(
            f"{p}: unknown file type {ext or '(no extension)'!r}; expected one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if not p.exists():
        raise UntwineError(f"{p}: no such file")
    if p.is_dir():
        raise UntwineError(f"{p}: is a directory, expected a file")

    if ext in (".csv", ".tsv"):
        return _parse_text(p, "," if ext == ".csv" else "\t")

    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise UntwineError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not (magic[:4] in (b"PK\x03\x04", b"PK\x05\x06") or magic == b"\x93NUMPY"):
        raise UntwineError(f"{p}: cannot read as {ext} (not a NumPy file: unrecognised header)")
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "unreadable"
        if "pickle" in msg.lower():
            msg = "contains Python objects (pickled), not a numeric array"
        raise UntwineError(f"{p}: cannot read as {ext} ({msg})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UntwineError(f"{p}: cannot read as {ext} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'corrupt file'})") from None

    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            if not names:
                raise UntwineError(f"{p}: the archive holds no arrays")
            if key is None and len(names) > 1:
                raise UntwineError(
                    f"{p}: the archive holds {len(names)} arrays ({', '.join(names)}); name one with --key K "
                    f"or {p.name}:K"
                )
            if key is None:
                key = names[0]
            elif key not in names:
                raise UntwineError(f"{p}: no array named {key!r}; available: {', '.join(names)}")
            try:
                arr = loaded[key]
            except ValueError:
                raise UntwineError(f"{p}: array {key!r} contains Python objects, not numbers") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise UntwineError(f"{p}: cannot read array {key!r} ({type(exc).__name__})") from None
        return np.asarray(arr)
    if not isinstance(loaded, np.ndarray):  # pragma: no cover - np.load returns ndarray or NpzFile
        raise UntwineError(f"{p}: cannot read as {ext}")
    return loaded
