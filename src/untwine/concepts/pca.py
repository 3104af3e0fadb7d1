"""PCA codes: the unsupervised linear baseline with as many components as a dictionary has latents.

Principal components of the train rows (mean-centred, ``numpy.linalg.svd``); the codes of
a row are its coordinates on the first ``m`` components and its reconstruction is the
mean plus their span.  An overcomplete dictionary (more latents than dimensions) is
compared with all ``D`` components, a rotation that reconstructs exactly; the number
used is returned.
"""

from __future__ import annotations

import numpy as np

from untwine._checks import as_codes
from untwine.errors import UntwineError


class PCA:
    """Fit on train rows, then :meth:`encode` / :meth:`decode` any rows."""

    def __init__(self, num_components: int) -> None:
        if isinstance(num_components, bool) or not isinstance(num_components, (int, np.integer)) or num_components < 1:
            raise UntwineError(f"PCA: num_components must be a positive integer, got {num_components!r}")
        self.requested = int(num_components)

    def fit(self, x) -> PCA:
        a = as_codes(x, "activations")
        self.mean_ = a.mean(axis=0)
        _, s, vt = np.linalg.svd(a - self.mean_, full_matrices=False)
        self.num_components = min(self.requested, vt.shape[0])
        self.components_ = vt[: self.num_components]
        var = s**2
        self.explained_variance_ratio_ = var[: self.num_components] / max(var.sum(), 1e-300)
        return self

    def encode(self, x) -> np.ndarray:
        return (as_codes(x, "activations") - self.mean_) @ self.components_.T

    def decode(self, codes) -> np.ndarray:
        return as_codes(codes, "codes") @ self.components_ + self.mean_


__all__ = ["PCA"]
