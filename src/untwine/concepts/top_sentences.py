"""The sentences that most activate each latent (for reports on dictionaries of text activations).

For latent ``j``, the ``n`` activation rows with the largest code ``z_j`` (positive values
only; ties by row order), each given as ``(value, sentence)``.  With token pooling, an
activation directory's ``rows.npy`` maps each activation row to its sentence (pass it as
``rows``); the same sentence is listed once per latent, at its largest value.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError


def top_sentences(codes, sentences, *, rows=None, latents=None, n: int = 5) -> dict[int, list[tuple[float, str]]]:
    """``{latent: [(value, sentence), ...]}``, largest first, at most ``n`` per latent."""
    z = as_codes(codes, "codes")
    sents = list(sentences)
    r = np.arange(z.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if r.shape[0] != z.shape[0]:
        raise UntwineError(f"rows has {r.shape[0]} entries but the codes have {z.shape[0]} rows; they must match")
    if r.size and (r.min() < 0 or r.max() >= len(sents)):
        raise UntwineError(f"rows point outside the {len(sents)} sentences")
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
            picked.append((float(z[i, j]), sents[r[i]]))
        out[j] = picked
    return out


__all__ = ["top_sentences"]
