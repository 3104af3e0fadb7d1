"""The directions section of the run report: what ``untwine directions`` wrote, never recomputed.

:func:`read_directions` reads ``RUN_DIR/directions/scores.json`` (None when absent);
:func:`directions_section` turns it into the report's HTML: the oracle's accuracy, the
comparison table (one row per method) and the traversal picture of the best-aligned method,
read from the files beside ``scores.json``.
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


def directions_section(scores: Mapping[str, Any], folder) -> str:
    """The report's HTML body for a directions ``scores.json`` read from ``folder``."""
    from untwine.viz.html import esc as _esc, img as _img, table as _table

    methods = scores.get("methods", {})
    rows, best, best_align = [], None, -1.0
    for name, entry in methods.items():
        if "error" in entry:
            rows.append([name] + [None] * len(COLUMNS) + [entry["error"]])
            continue
        rows.append([name] + [entry.get(c) for c in COLUMNS] + [", ".join(m or "-" for m in entry.get("matches", []))])
        if (entry.get("alignment") or 0) > best_align:
            best, best_align = name, entry.get("alignment") or 0
    oracle = scores.get("oracle", {})
    acc = oracle.get("accuracy") or {}
    acc_text = ", ".join(f"{k} {v:.2f}" for k, v in acc.items())
    body = (
        f'<p class="note">From <code>directions/scores.json</code> (written by <code>untwine directions</code>): '
        f"{scores.get('num')} directions per method in the {scores.get('latent_dim')}-dimensional latent space, each "
        "traversed from many prior latents; the oracle reads the factors of the decoded images "
        f"(held-out accuracy: {_esc(acc_text)}). Effects are the factors' changes along each direction; "
        "disentanglement / completeness are DCI-style, gap MIG-style, alignment the Hungarian match of directions "
        "to factors.</p>"
    )
    body += _table(["method", *COLUMNS, "matched factors"], rows)
    if best is not None:
        pic = Path(folder) / (best if len(methods) > 1 else "") / "traversal.png"
        if pic.is_file():
            body += f'<p class="note">Directions of the best-aligned method, {_esc(best)}:</p>'
            body += _img(pic.read_bytes(), f"{best} directions")
    return body
