"""Training curves from a run's ``log.csv`` (``step`` then one column per loss term).

Each loss term gets its own panel (terms live on very different scales); a centred
moving average over ``smooth`` logged rows (shorter at the ends, so it never lags the
raw values) is drawn over them when there are enough rows, with a legend.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.viz._images import new_figure

LOG_FILE = "log.csv"


def read_log(path) -> dict[str, np.ndarray]:
    """``{column: float array}`` from a log CSV (or a run directory holding ``log.csv``).

    Non-numeric cells become NaN; a missing file gives ``{}``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.is_file():
        return {}
    try:
        rows = list(csv.reader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError) as exc:
        raise UntwineError(f"{path}: cannot read the training log ({exc})") from None
    if not rows:
        return {}
    header, data = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]

    def num(cell: str) -> float:
        try:
            return float(cell)
        except ValueError:
            return math.nan

    return {name: np.array([num(r[j]) for r in data], dtype=np.float64) for j, name in enumerate(header)}


def _moving_average(y: np.ndarray, k: int) -> np.ndarray:
    """Centred mean over ``k`` rows (``k // 2`` each side; fewer at the ends): no lag behind ``y``."""
    y = np.asarray(y, dtype=np.float64)
    half = max(0, min(k, len(y)) // 2)
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    lo, hi = np.maximum(i - half, 0), np.minimum(i + half + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def curves_figure(log: dict[str, np.ndarray], *, smooth: int = 10, columns: int = 3, title: str | None = None):
    """A matplotlib Figure with one panel per loss term against ``step``.

    ``log`` is ``{column: array}`` as from :func:`read_log`; it must hold ``step`` and
    at least one other numeric column.
    """
    if "step" not in log or len(log["step"]) == 0:
        raise UntwineError("training log has no rows (no 'step' column or no data)")
    step = np.asarray(log["step"], dtype=np.float64)
    terms = [k for k, v in log.items() if k != "step" and np.isfinite(np.asarray(v, dtype=np.float64)).any()]
    if not terms:
        raise UntwineError("training log has no numeric loss columns")
    # the total loss first
    terms.sort(key=lambda k: (k != "loss", 0))
    ncol = min(columns, len(terms))
    nrow = math.ceil(len(terms) / ncol)
    fig = new_figure((3.6 * ncol, 2.5 * nrow))
    for i, name in enumerate(terms):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        y = np.asarray(log[name], dtype=np.float64)
        ok = np.isfinite(y)
        ax.plot(step[ok], y[ok], color="#9bb7d4", lw=0.8, label="raw")
        if ok.sum() >= 3 * smooth and smooth > 1:
            ax.plot(step[ok], _moving_average(y[ok], smooth), color="#1f4e79", lw=1.4,
                    label=f"centred mean of {smooth} rows")
            ax.legend(fontsize=6, loc="best", frameon=False)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        yv = y[ok]
        if yv.size and np.all(yv > 0) and yv.max() / max(yv.min(), 1e-300) > 100:
            ax.set_yscale("log")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
