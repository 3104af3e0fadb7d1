"""The inputs that most activate each latent: the ranking shared by text and images.

:func:`top_rows`: for latent ``j``, the activation rows with the largest code ``z_j``
(positive values only; ties by row order), at most one per input item (``rows``: the
input item of each activation row, as an activations folder's ``rows.npy`` holds it; an
item with several rows, e.g. one per token or spatial position, is listed at its largest
value).  :func:`untwine.concepts.top_sentences.top_sentences` shows them as sentences;
:func:`top_images` records them for inputs drawn from a ground-truth dataset (an
activations folder written by ``untwine activations``), for the SAE report to render.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError


def top_rows(codes, *, rows=None, items: int | None = None, latents=None, n: int = 5) -> dict[int, list[tuple[float, int]]]:
    """``{latent: [(value, activation row), ...]}``, largest first, at most ``n`` per latent and one
    per input item (module docstring); ``items``: the number of input items ``rows`` points into."""
    z = as_codes(codes, "codes")
    r = np.arange(z.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if r.shape[0] != z.shape[0]:
        raise UntwineError(f"rows has {r.shape[0]} entries but the codes have {z.shape[0]} rows; they must match")
    if items is not None and r.size and (r.min() < 0 or r.max() >= items):
        raise UntwineError(f"rows point outside the {items} inputs")
    if n < 1:
        raise UntwineError(f"n must be at least 1, got {n}")
    cols = range(z.shape[1]) if latents is None else [int(j) for j in latents]
    out = {}
    for j in cols:
        if not 0 <= j < z.shape[1]:
            raise UntwineError(f"latent {j} is out of range; the codes have {z.shape[1]} latents")
        order = np.argsort(-z[:, j], kind="stable")
        picked, seen = [], set()
        for i in order:
            if z[i, j] <= 0 or len(picked) == n:
                break
            if r[i] in seen:
                continue
            seen.add(r[i])
            picked.append((float(z[i, j]), int(i)))
        out[j] = picked
    return out


def top_images(codes, images: dict, *, rows, latents, n: int = 5) -> dict[str, Any]:
    """The evaluation's record of each latent's top inputs drawn from a dataset (``evaluation.json``
    key ``top_images``): ``dataset`` (as the activations folder names it), ``grid`` (the spatial
    grid with ``positions`` pooling, else None) and ``latents`` ``{j: [{"value", "row", "index",
    "position"}, ...]}``: the code, the activation row, the dataset's flat index of the input and,
    with positions, the row's spatial position.  ``images`` is the folder's
    :meth:`~untwine.activations.layout.ActivationFolder.context` entry of that name."""
    inputs = np.asarray(images["inputs"], dtype=np.int64)
    pos = images.get("positions")
    tops = top_rows(codes, rows=rows, items=len(inputs), latents=latents, n=n)
    r = np.asarray(rows, dtype=np.int64).reshape(-1)
    out = {}
    for j, lst in tops.items():
        out[str(j)] = [{"value": v, "row": i, "index": int(inputs[r[i]]),
                        **({"position": [int(p) for p in pos[i]]} if pos is not None else {})} for v, i in lst]
    return {"dataset": images.get("dataset"), "grid": images.get("grid"), "latents": out}


__all__ = ["top_images", "top_rows"]
