"""What a representation captured, in words: which factor lives in which latent.

:func:`factor_findings` reads the factor x latent matrix of normalised mutual information
``I(z_j; v_k) / H(v_k)`` (:func:`untwine.metrics.matrices.normalized_mi`: codes discretised into 20 equal-width bins, the discretisation of
MIG, Chen et al. 2018: the share of a factor's entropy that one latent holds) and classes
every factor:

* **captured** by latent ``z_j`` when ``z_j`` holds at least ``min_share`` (0.2) of the
  factor's information and at least twice as much as any other latent;
* **spread** when some latent holds ``min_share`` but another holds more than half as
  much (the factor is shared out, typically rotated over several latents);
* **not captured** when no single latent holds ``min_share``.

:func:`describe` turns the findings, the headline scores and the reference scores (an
untrained encoder and the factors themselves, on the same samples: see
:mod:`untwine.train.reference`) into the short paragraph that opens the run report and
ends ``untwine evaluate`` and the demo.  Everything here is plain data in, plain data
(JSON-ready) out; the HTML report escapes the text itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from untwine.metrics.matrices import normalized_mi  # noqa: F401  (the matrix the findings read)

#: a latent must hold at least this share of a factor's information to capture it
MIN_SHARE = 0.2
#: ... and at least this many times the share of the next-best latent
MIN_RATIO = 2.0
#: the headline scores the paragraph compares with the references, with their names in words
HEADLINE = (("mig", "MIG"), ("dci_disentanglement", "DCI disentanglement"))


def factor_findings(
    nmi,
    factor_names: Sequence[str],
    *,
    passive_latents: Sequence[int] = (),
    min_share: float = MIN_SHARE,
    min_ratio: float = MIN_RATIO,
) -> dict[str, Any]:
    """Class every factor from the ``[D, K]`` normalised-MI matrix ``nmi`` (see the module docstring).

    Returns ``{"factors": [{"name", "status", "latent", "share", "runner_up", "runner_up_share"}, ...],
    "captured": [names], "passive_latents": [...], "num_latents": D}``; ``status`` is
    ``"captured"``, ``"spread"`` or ``"not captured"``.  Passive latents are never credited.
    """
    m = np.asarray(nmi, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(factor_names):
        raise ValueError(f"nmi must be [latents, {len(factor_names)}], got shape {m.shape}")
    m = np.where(np.isfinite(m), m, 0.0)
    passive = sorted({int(j) for j in passive_latents})
    if passive:
        m = m.copy()
        m[passive, :] = 0.0
    rows = []
    for k, name in enumerate(factor_names):
        order = np.argsort(-m[:, k], kind="stable")
        best = int(order[0])
        share = float(m[best, k])
        second = int(order[1]) if m.shape[0] > 1 else None
        second_share = float(m[second, k]) if second is not None else 0.0
        if share < min_share:
            status = "not captured"
        elif second_share * min_ratio > share:
            status = "spread"
        else:
            status = "captured"
        rows.append({"name": str(name), "status": status, "latent": best, "share": share,
                     "runner_up": second, "runner_up_share": second_share})
    return {
        "factors": rows,
        "captured": [r["name"] for r in rows if r["status"] == "captured"],
        "passive_latents": passive,
        "num_latents": int(m.shape[0]),
    }


def _num(v) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{float(v):.2f}"


def describe(findings: Mapping[str, Any], scores: Mapping[str, Any] | None = None,
             reference: Mapping[str, Any] | None = None) -> str:
    """The findings as one short paragraph of plain text (see the module docstring)."""
    rows = list(findings["factors"])
    captured = [r for r in rows if r["status"] == "captured"]
    parts = []
    if captured:
        items = ", ".join(f"{r['name']} -> z{r['latent']} ({r['share']:.2f} of its information)" for r in captured)
        parts.append(f"Captured {len(captured)} of {len(rows)} factors, each in one latent: {items}.")
        by_latent: dict[int, list[str]] = {}
        for r in captured:
            by_latent.setdefault(r["latent"], []).append(r["name"])
        for j, names in sorted(by_latent.items()):
            if len(names) > 1:
                parts.append(f"z{j} holds {' and '.join(names)} together, so it does not separate them.")
    else:
        parts.append(f"No factor of {len(rows)} is captured by a single latent.")
    for r in rows:
        if r["status"] == "spread":
            parts.append(f"{r['name']}: spread over z{r['latent']} ({r['share']:.2f}) and z{r['runner_up']} "
                         f"({r['runner_up_share']:.2f}).")
    missed = [f"{r['name']} (best z{r['latent']}: {r['share']:.2f})" for r in rows if r["status"] == "not captured"]
    if missed:
        parts.append(f"Not captured by any single latent: {', '.join(missed)}.")
    ref = reference or {}
    rand, fac = ref.get("random_encoder") or {}, ref.get("factors") or {}
    comps = []
    for key, words in HEADLINE:
        if scores is None or key not in scores:
            continue
        text = f"{words} {_num(scores[key])}"
        if key in rand or key in fac:
            text += f" (untrained encoder {_num(rand.get(key))}, the factors themselves {_num(fac.get(key))})"
        comps.append(text)
    if comps:
        parts.append("; ".join(comps) + ".")
    passive = list(findings.get("passive_latents", ()))
    d = int(findings.get("num_latents", 0))
    if passive:
        parts.append(f"{len(passive)} of {d} latents are passive (carry nothing): "
                     f"{', '.join(f'z{j}' for j in passive)}.")
    elif d:
        parts.append(f"All {d} latents are active.")
    return " ".join(parts)


#: a dictionary latent "aligns" with a factor when it holds at least this share of its information
ALIGNED_SHARE = 0.1
#: the scores the concept paragraph compares across code sets, with their names in words
CONCEPT_SCORES = (("mig", "MIG"), ("sparse_probe_k1", "1-sparse probing accuracy"))


def describe_concepts(nmi, factor_names: Sequence[str], codes: Mapping[str, Any] | None = None,
                      baselines: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The paragraph that opens an SAE report: how many latents align with a factor (hold at least
    ``ALIGNED_SHARE`` of its information), the best latent per factor, and the headline
    concept scores of the dictionary's ``codes`` beside the baselines' (``{"raw": {...},
    "supervised": {...}}``, as ``untwine sae evaluate`` writes them)."""
    m = np.where(np.isfinite(np.asarray(nmi, dtype=np.float64)), np.asarray(nmi, dtype=np.float64), 0.0)
    found = factor_findings(m, factor_names)
    aligned = int(np.sum(m.max(axis=1) >= ALIGNED_SHARE)) if m.size else 0
    parts = [f"{aligned} of {m.shape[0]} latents align with a factor (hold at least {ALIGNED_SHARE:.2f} of its "
             "information)."]
    best = []
    for r in found["factors"]:
        tail = "" if r["status"] == "captured" else f", {r['status']}"
        best.append(f"{r['name']} -> latent {r['latent']} ({r['share']:.2f}{tail})")
    parts.append("Best latent per factor: " + "; ".join(best) + ".")
    base = baselines or {}
    for key, words in CONCEPT_SCORES:
        if not codes or codes.get(key) is None:
            continue
        others = [f"{name} {_num(base[name].get(key))}" for name in ("raw", "pca", "supervised")
                  if name in base and base[name].get(key) is not None]
        parts.append(f"{words} {_num(codes[key])}" + (f" (baselines: {', '.join(others)})." if others else "."))
    return " ".join(parts)
