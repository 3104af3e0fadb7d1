"""Reading what ``untwine directions`` wrote, for the run report (never recomputed).

:func:`read_directions` reads and checks ``RUN_DIR/directions/scores.json`` (None when absent);
the report's section is drawn by :mod:`untwine.viz.directions_report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from untwine.errors import UntwineError
from untwine.files import read_json

#: where `untwine directions` writes by default, relative to the run directory
DIRECTIONS_SCORES = Path("directions") / "scores.json"
COLUMNS = ("disentanglement", "completeness", "gap", "alignment", "mean_effect", "seconds")


def read_directions(run_dir) -> tuple[Mapping[str, Any], Path] | None:
    """``(scores, folder)`` of ``RUN_DIR/directions/scores.json``, or None when there is none."""
    path = Path(run_dir) / DIRECTIONS_SCORES
    if not path.is_file():
        return None
    data = read_json(path, what="directions scores")
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict):
        raise UntwineError(f"{path} is not a directions scores file (re-run `untwine directions`)")
    for name, entry in data["methods"].items():
        problem = _entry_problem(entry)
        if problem:
            raise UntwineError(f"{path}: method {name!r} {problem} (re-run `untwine directions`)")
    return data, path.parent


def _entry_problem(entry) -> str | None:
    """What is malformed in one method's entry of a scores file, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    if "error" in entry:
        return None if isinstance(entry["error"], str) else "has a malformed error"
    for c in COLUMNS:
        v = entry.get(c)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"has a non-numeric {c} ({v!r})"
    matches = entry.get("matches", [])
    if not isinstance(matches, list) or not all(m is None or isinstance(m, str) for m in matches):
        return "has malformed matches"
    return None
