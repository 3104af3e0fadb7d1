"""SeFa: closed-form factorisation of the first latent-to-feature layer.

Reference: Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021,
and genforce/sefa ``utils.factorize_weight``.  For the layer ``y = A z + b`` that first maps
the latent code to features (``decoder.fc.0`` of the convolutional decoder,
:func:`untwine.directions.base.first_layer`), each output unit's weight row of ``A`` is
L2-normalised, and the directions are the eigenvectors of ``A^T A`` ordered by decreasing
eigenvalue: the unit latent moves that change that layer's output the most.  No sampling,
no training; ``info["eigenvalues"]`` holds the eigenvalues of the chosen directions.
"""

from __future__ import annotations

import numpy as np

from untwine.directions.base import Found, Generator, Method, register, unit_rows


def factorize_weight(weight) -> tuple[np.ndarray, np.ndarray]:
    """``(eigenvalues [D], directions [D, D])`` of a layer weight ``[out, D]``: rows normalised,
    eigenvectors of ``A^T A`` as rows, largest eigenvalue first (each sign made so that its
    largest-magnitude coordinate is positive)."""
    a = np.asarray(weight, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    a = a / np.where(norms > 0, norms, 1.0)
    values, vectors = np.linalg.eigh(a.T @ a)
    order = np.argsort(-values, kind="stable")
    dirs = vectors[:, order].T
    signs = np.sign(dirs[np.arange(len(dirs)), np.abs(dirs).argmax(axis=1)])
    return values[order], dirs * signs[:, None]


def sefa(gen: Generator, num: int) -> Found:
    values, dirs = factorize_weight(gen.layer().weight.detach().cpu().numpy())
    return Found(unit_rows(dirs[:num]), info={"eigenvalues": [float(v) for v in values[:num]]})


register(Method("sefa", sefa, "closed form: eigenvectors of A^T A of the first layer (rows normalised)", needs_layer=True))
