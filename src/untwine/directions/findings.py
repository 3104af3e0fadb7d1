"""What a directions ``scores.json`` says, in words: which method found which factor, judged
against the baselines and against the oracle's reliability.

:func:`judge` reads a result of :func:`untwine.directions.run.find_directions` (or its
``scores.json``) and returns the verdict as data; :func:`describe` turns it into the paragraph
that ``untwine directions`` prints last and the run report shows above its directions table.

Rules (so a page never promotes a baseline or trusts an oracle that cannot read the factors):

* Only a method that is not a baseline (``axes``, ``random``) can be named the best, and only
  when its ``alignment`` beats every baseline's by :data:`MIN_LEAD`; otherwise the verdict says
  that no method beats the baselines, i.e. that the model (or the oracle) is too weak to judge.
* The oracle is weak when its mean held-out accuracy is below :data:`MIN_ORACLE_ACCURACY`, or
  when it reads a factor no better than :data:`NEAR_CHANCE` times chance: the paragraph says so.
* A factor counts as found by a direction when that direction carries at least
  :data:`MIN_SHARE` of the factor's total effect over the method's directions, and the effect is
  at least :data:`MIN_EFFECT` of the factor's range.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: a learnt / closed-form method must beat the best baseline's alignment by this much to be named
MIN_LEAD = 0.02
#: the oracle's mean held-out accuracy below which its scores are called unreliable
MIN_ORACLE_ACCURACY = 0.8
#: a factor read at most this many times chance accuracy is "near chance"
NEAR_CHANCE = 1.5
#: a direction "finds" a factor when it carries this share of the factor's effect ...
MIN_SHARE = 0.5
#: ... and moves it by at least this fraction of its range
MIN_EFFECT = 0.05

#: the baselines of untwine.directions.baselines (for scores files written before entries said so)
_BASELINES = ("axes", "random")


def is_baseline(name: str, entry: Mapping[str, Any]) -> bool:
    """Whether method ``name``'s entry is a baseline (the entry says so; older files: by name)."""
    return bool(entry.get("baseline", name in _BASELINES))


def weak_oracle(oracle: Mapping[str, Any]) -> tuple[float | None, list[str]]:
    """``(mean accuracy, factors read near chance)`` of a scores file's oracle summary."""
    acc = oracle.get("accuracy") or {}
    chance = oracle.get("chance") or {}
    near = [k for k, v in acc.items() if k in chance and v <= NEAR_CHANCE * float(chance[k])]
    mean = oracle.get("mean_accuracy")
    return (None if mean is None else float(mean)), near


def _found_factors(entry: Mapping[str, Any], factor_names: list[str]) -> list[tuple[str, int, float, float]]:
    """``(factor, direction, effect, share)`` for each factor one of the method's directions finds."""
    e = np.asarray(entry.get("effects") or [], dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != len(factor_names):
        return []
    found = []
    for k, name in enumerate(factor_names):
        col = e[:, k]
        j = int(np.argmax(col))
        total = float(col.sum())
        if total > 0 and col[j] >= MIN_EFFECT and col[j] / total >= MIN_SHARE:
            found.append((name, j, float(col[j]), float(col[j] / total)))
    return found


def judge(scores: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict of a directions result: best method (never a baseline), best baseline, the
    factors the best method finds, and the oracle's weakness."""
    methods = {n: e for n, e in (scores.get("methods") or {}).items() if "error" not in e}
    oracle = scores.get("oracle") or {}
    names = list((oracle.get("accuracy") or {}).keys())

    def best_of(items):
        items = [(n, e.get("alignment")) for n, e in items if isinstance(e.get("alignment"), (int, float))]
        return max(items, key=lambda t: t[1]) if items else (None, None)

    base_name, base_align = best_of((n, e) for n, e in methods.items() if is_baseline(n, e))
    best_name, best_align = best_of((n, e) for n, e in methods.items() if not is_baseline(n, e))
    beats = best_name is not None and (base_align is None or best_align >= base_align + MIN_LEAD)
    mean_acc, near = weak_oracle(oracle)
    return {
        "best": best_name if beats else None,
        "best_alignment": best_align if beats else None,
        "candidate": best_name,
        "candidate_alignment": best_align,
        "best_baseline": base_name,
        "baseline_alignment": base_align,
        "found": _found_factors(methods[best_name], names) if beats else [],
        "factor_names": names,
        "oracle_mean_accuracy": mean_acc,
        "oracle_near_chance": near,
        "oracle_weak": bool(near) or (mean_acc is not None and mean_acc < MIN_ORACLE_ACCURACY),
    }


def describe(scores: Mapping[str, Any]) -> str:
    """The paragraph: which method found which factor, against the baselines, and how far the
    oracle can be trusted."""
    v = judge(scores)
    parts = []
    if v["best"] is not None:
        found = v["found"]
        what = "; ".join(f"{f} \u2192 d{j} ({share:.2f} of its effect)" for f, j, _, share in found)
        missing = [n for n in v["factor_names"] if n not in {f for f, *_ in found}]
        parts.append(f"{v['best']} found the factors best (alignment {v['best_alignment']:.2f}"
                     + (f", against {v['baseline_alignment']:.2f} for the {v['best_baseline']} baseline)."
                        if v["best_baseline"] else ")."))
        parts.append(f"Its directions: {what}." if found else "None of its directions carries one factor on its own.")
        if missing:
            parts.append(f"Not found by a single direction: {', '.join(missing)}.")
    elif v["candidate"] is not None:
        parts.append(f"No method beats the baselines: the best, {v['candidate']} (alignment "
                     f"{v['candidate_alignment']:.2f}), is no better than {v['best_baseline']} "
                     f"({v['baseline_alignment']:.2f}); the model (or the oracle) is too weak to judge which directions "
                     "hold the factors.")
    else:
        parts.append("Only baselines were run: nothing to judge (run `untwine directions RUN_DIR --method all`).")
    if v["oracle_weak"]:
        acc = v["oracle_mean_accuracy"]
        why = f"mean held-out accuracy {acc:.2f}" if acc is not None else "no accuracy recorded"
        if v["oracle_near_chance"]:
            why += f"; near chance on {', '.join(v['oracle_near_chance'])}"
        parts.append(f"The oracle reads the factors weakly ({why}): these scores are unreliable; "
                     "give more --oracle-steps.")
    return " ".join(parts)
