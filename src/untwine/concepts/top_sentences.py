"""The sentences that most activate each latent (for reports on dictionaries of text activations).

For latent ``j``, the ``n`` activation rows with the largest code ``z_j`` (positive values
only; ties by row order), each given as ``(value, sentence)``
(:func:`untwine.concepts.top_inputs.top_rows`).  With token pooling, an activation
directory's ``rows.npy`` maps each activation row to its sentence (pass it as ``rows``);
the same sentence is listed once per latent, at its largest value.
"""

from __future__ import annotations

import numpy as np

from untwine.concepts.top_inputs import top_rows


def top_sentences(codes, sentences, *, rows=None, latents=None, n: int = 5) -> dict[int, list[tuple[float, str]]]:
    """``{latent: [(value, sentence), ...]}``, largest first, at most ``n`` per latent."""
    sents = list(sentences)
    tops = top_rows(codes, rows=rows, items=len(sents), latents=latents, n=n)
    r = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    return {j: [(v, sents[i if r is None else r[i]]) for v, i in lst] for j, lst in tops.items()}


__all__ = ["top_sentences"]
