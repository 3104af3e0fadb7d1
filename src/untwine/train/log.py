"""The CSV log of a training run (``RUN_DIR/log.csv``).

One row every ``log_every`` steps: ``step`` then each loss term, averaged over
the steps since the previous row.  Rows are appended and flushed as they are
written.  On resume the file is cut back to the checkpoint's step and the
running averages are restored from the checkpoint, so a resumed run's log is
identical to an uninterrupted one's.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from untwine.files import atomic_write_text

LOG_FILE = "log.csv"


class CsvLogger:
    """Averages loss terms over ``log_every`` steps and appends rows to a CSV file."""

    def __init__(self, path, log_every: int) -> None:
        self.path = Path(path)
        self.log_every = int(log_every)
        self.columns: list[str] | None = None
        self.sums: dict[str, float] = {}
        self.count = 0
        self._fh = None
        self._tb = None

    # -- state for checkpoints --------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"columns": self.columns, "sums": dict(self.sums), "count": self.count}

    def restore(self, state: dict[str, Any] | None, step: int) -> None:
        """Cut the file back to rows with ``step <= step`` and restore the running averages."""
        state = state or {}
        self.columns = state.get("columns")
        self.sums = {k: float(v) for k, v in (state.get("sums") or {}).items()}
        self.count = int(state.get("count", 0))
        truncate_log(self.path, step)
        if self.columns is None and self.path.is_file():
            with open(self.path, newline="") as fh:
                header = next(csv.reader(fh), None)
            if header and header[0] == "step":
                self.columns = header[1:]

    def start_fresh(self) -> None:
        if self.path.exists():
            self.path.unlink()
        self.columns, self.sums, self.count = None, {}, 0

    def attach_tensorboard(self, writer) -> None:
        self._tb = writer

    # -- logging ------------------------------------------------------------------
    def update(self, step: int, terms: dict[str, float]) -> dict[str, float] | None:
        """Add one step's terms (``step`` = steps completed); returns the row if one was written."""
        if self.columns is None:
            self.columns = list(terms)
        for k, v in terms.items():
            if k not in self.sums and k not in self.columns:
                continue  # a term that appeared after the header was written: averaged out
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        if step % self.log_every != 0:
            return None
        row = {k: self.sums.get(k, math.nan) / max(self.count, 1) for k in self.columns}
        self._write(step, row)
        self.sums, self.count = {}, 0
        return row

    def _write(self, step: int, row: dict[str, float]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if self._fh is None:
            self._fh = open(self.path, "a", newline="")
        w = csv.writer(self._fh, lineterminator="\n")  # one line ending, before and after a resume
        if new:
            w.writerow(["step", *self.columns])
        w.writerow([step, *(repr(float(row[k])) for k in self.columns)])
        self._fh.flush()
        if self._tb is not None:
            for k, v in row.items():
                self._tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def truncate_log(path, step: int) -> None:
    """Drop rows of ``path`` with step greater than ``step`` (and any torn last line)."""
    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    keep = [lines[0]] if lines[0].startswith("step") else []
    for line in lines[1:]:
        if not line.endswith("\n"):
            break  # torn write from a kill
        head = line.split(",", 1)[0]
        try:
            s = int(head)
        except ValueError:
            break
        if s > step:
            break
        keep.append(line)
    if len(keep) <= 1 and step == 0:
        keep = []
    new = "".join(keep)
    if new != text:
        atomic_write_text(path, new)


def read_log(path) -> dict[str, np.ndarray]:
    """Read a run's ``log.csv`` into ``{column: array}``."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.is_file():
        return {}
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows:
        return {}
    header, data = rows[0], rows[1:]
    out = {}
    for j, name in enumerate(header):
        col = [float(r[j]) for r in data if len(r) == len(header)]
        out[name] = np.asarray(col, dtype=np.int64 if name == "step" else np.float64)
    return out
