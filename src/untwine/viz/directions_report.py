"""The directions section of the run report, from what ``untwine directions`` wrote.

It opens with the paragraph of :func:`untwine.directions.findings.describe` (which method found
which factor, against the baselines; whether the oracle can be trusted), then the comparison
table (one row per method) and the traversal picture of the best method, never of a baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from untwine.directions.findings import describe, judge
from untwine.directions.report import COLUMNS
from untwine.viz.html import esc, img, table


def directions_section(scores: Mapping[str, Any], folder) -> str:
    """The report's HTML body for a directions ``scores.json`` read from ``folder``."""
    methods = scores.get("methods", {})
    rows = []
    for name, entry in methods.items():
        if "error" in entry:
            rows.append([name] + [None] * len(COLUMNS) + [entry["error"]])
        else:
            rows.append([name] + [entry.get(c) for c in COLUMNS]
                        + [", ".join(m or "-" for m in entry.get("matches", []))])
    acc = (scores.get("oracle") or {}).get("accuracy") or {}
    acc_text = ", ".join(f"{k} {v:.2f}" for k, v in acc.items())
    body = f'<p class="summary" id="directions-summary">{esc(describe(scores))}</p>'
    body += (
        f'<p class="note">From <code>directions/scores.json</code> (written by <code>untwine directions</code>): '
        f"{scores.get('num')} directions per method in the {scores.get('latent_dim')}-dimensional latent space, each "
        "traversed from many prior latents; the oracle reads the factors of the decoded images "
        f"(held-out accuracy: {esc(acc_text)}). Effects are the factors' changes along each direction; "
        "disentanglement / completeness are DCI-style, gap MIG-style, alignment the Hungarian match of directions "
        "to factors; <code>axes</code> and <code>random</code> are baselines.</p>"
    )
    body += table(["method", *COLUMNS, "matched factors"], rows)
    best = judge(scores)["best"]
    if best is not None:
        pic = Path(folder) / (best if len(methods) > 1 else "") / "traversal.png"
        if pic.is_file():
            body += f'<p class="note">Directions of the best method, {esc(best)}:</p>'
            body += img(pic.read_bytes(), f"{best} directions")
    return body
