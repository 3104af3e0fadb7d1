"""Reading labelled series files: the ``.ts`` format (sktime/aeon) and UCR-layout tables.

``read_ts`` returns class labels as strings, or a regression file's (``@targetLabel true``)
real-valued targets as float64; ``ts_problem`` says why a ``.ts`` header cannot load
(unequal lengths, time stamps, missing values, no labels), which is what
:func:`untwine.data.series.bundled_series` uses to list only the sets that load.
See :mod:`untwine.data.series` for the data sets built from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine.errors import UntwineError


def _ts_header(lines) -> tuple[dict[str, str], bool]:
    """Consume ``lines`` up to and including ``@data``: the ``@key value`` header (lower case) and
    whether ``@data`` was found; the rest of the iterator holds the series."""
    header: dict[str, str] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            return header, True
        if line.startswith("@"):
            key, _, val = line[1:].partition(" ")
            header[key.lower()] = val.strip().lower()
    return header, False


def _flag(header: dict[str, str], key: str, default: str) -> bool:
    return (header.get(key, default).split(" ") or [default])[0] == "true"


def _is_regression(header: dict[str, str]) -> bool:
    """A ``.ts`` header of a regression set: ``@targetLabel true`` (aeon's regression files)."""
    return _flag(header, "targetlabel", "false")


def ts_problem(header: dict[str, str]) -> str | None:
    """Why series with this ``.ts`` header cannot be loaded (None when they can)."""
    if _flag(header, "timestamps", "false"):
        return "series with time stamps are not supported"
    if not _flag(header, "equallength", "true"):
        return "series of unequal lengths are not supported"
    if _flag(header, "missing", "false"):
        return "series with missing values are not supported"
    if not _is_regression(header) and not _flag(header, "classlabel", "true"):
        return "the file has neither class labels nor regression targets"
    return None


def read_ts_header(path) -> dict[str, str]:
    """The header of a ``.ts`` file (lines before ``@data``; keys and values lower case), read
    without the series."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            header, found = _ts_header(fh)
    except OSError as exc:
        raise UntwineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not found:
        raise UntwineError(f"{path}: not a .ts file (no @data line)")
    return header


def read_ts(path) -> tuple[np.ndarray, np.ndarray]:
    """Read an equal-length ``.ts`` file: ``(X [N, C, T] float64, labels [N])``: class labels as
    strings, or, for a regression file (``@targetLabel true``), the real-valued targets as float64."""
    path = Path(path)
    try:
        lines = iter(path.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError as exc:
        raise UntwineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    header, in_data = _ts_header(lines)
    if not in_data:
        raise UntwineError(f"{path}: not a .ts file (no @data line)")
    problem = ts_problem(header)
    if problem:
        raise UntwineError(f"{path}: {problem}")
    regression = _is_regression(header)
    rows = [ln for ln in (raw.strip() for raw in lines) if ln and not ln.startswith("#")]
    if not rows:
        raise UntwineError(f"{path}: no series after @data")
    what = "regression target" if regression else "class label"
    series, labels = [], []
    for i, row in enumerate(rows):
        parts = row.split(":")
        if len(parts) < 2:
            raise UntwineError(f"{path}: series {i} has no {what}")
        labels.append(parts[-1].strip())
        try:
            dims = [np.array([float(v) for v in p.split(",")], dtype=np.float64) for p in parts[:-1]]
        except ValueError:
            raise UntwineError(f"{path}: series {i} holds a value that is not a number (missing values are not supported)") from None
        if len({d.shape[0] for d in dims}) != 1:
            raise UntwineError(f"{path}: series {i} has channels of different lengths (unequal lengths are not supported)")
        series.append(np.stack(dims))
    if len({s.shape for s in series}) != 1:
        raise UntwineError(f"{path}: series of different lengths or channel counts (only equal-length series are supported)")
    x = np.stack(series)
    if not np.isfinite(x).all():
        raise UntwineError(f"{path}: missing or non-finite values are not supported")
    if not regression:
        return x, np.array(labels)
    try:
        targets = np.array([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        raise UntwineError(f"{path}: a regression target is not a number") from None
    if not np.isfinite(targets).all():
        raise UntwineError(f"{path}: missing or non-finite regression targets are not supported")
    return x, targets


def read_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a UCR-layout ``.csv`` / ``.tsv`` (label first, then values): ``(X [N, 1, T], labels [N] str)``."""
    path = Path(path)
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UntwineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    rows = [ln for ln in (t.strip() for t in text) if ln]
    if not rows:
        raise UntwineError(f"{path}: empty file")
    if delim == "," and "," not in rows[0] and (" " in rows[0] or "\t" in rows[0]):
        delim = None  # whitespace separated (the old UCR .txt files)
    labels, values = [], []
    for i, row in enumerate(rows):
        parts = [p.strip() for p in (row.split(delim) if delim else row.split())]
        if len(parts) < 2:
            raise UntwineError(f"{path}: row {i + 1} needs a label and at least one value")
        try:
            vals = [float(p) for p in parts[1:]]
        except ValueError:
            if i == 0:
                continue  # a header row
            raise UntwineError(f"{path}: row {i + 1} holds a value that is not a number") from None
        labels.append(parts[0])
        values.append(vals)
    if not values:
        raise UntwineError(f"{path}: no series")
    if len({len(v) for v in values}) != 1:
        raise UntwineError(f"{path}: rows have different lengths (only equal-length series are supported)")
    x = np.asarray(values, dtype=np.float64)[:, None, :]
    if not np.isfinite(x).all():
        raise UntwineError(f"{path}: missing or non-finite values are not supported")
    return x, np.array(labels)


def read_any(path: Path):
    """``(X, labels, regression)``: ``regression`` True/False from a ``.ts`` header, None for tables
    (decided from the labels, see :func:`real_targets`)."""
    if path.suffix.lower() == ".ts":
        x, y = read_ts(path)
        return x, y, y.dtype.kind == "f"
    return (*read_csv(path), None)
