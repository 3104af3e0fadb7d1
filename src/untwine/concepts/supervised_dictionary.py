"""The supervised dictionary of Makelov, Lange & Nanda 2024.

"Towards Principled Evaluations of Sparse Autoencoders for Interpretability and
Control" (arXiv:2405.08366) builds, from activations ``x`` labelled with attributes, one
vector per attribute value

    u_{a,v} = E[x | a = v] - E[x]

and approximates a row by the mean plus the vectors of its values,
``x_hat = E[x] + sum_a u_{a, v_a(x)}``.  With independent factors on a grid this is the
best additive (no-interaction) model of the activations, so it is the reference of what a
perfect concept dictionary reconstructs and scores.  An *edit* swaps one value's vector
for another's: ``x' = x - u_{a,v} + u_{a,v'}``.

Codes of a row (``[n, sum_a |a|]``, one latent per attribute value):

* :meth:`SupervisedDictionary.codes_from_factors`: the indicator of the row's values, the
  dictionary's own (label-given) code, the reference for the disentanglement suite;
* :meth:`SupervisedDictionary.encode`: a label-free code, the projection
  ``<x - E[x], u> / ||u||^2`` on each vector.

:meth:`SupervisedDictionary.fvu` is the fraction of variance it leaves unexplained
(:func:`untwine.concepts.reconstruction.fvu`).
"""

from __future__ import annotations

import numpy as np

from untwine._checks import as_codes, as_factors, same_rows
from untwine.concepts.reconstruction import fvu
from untwine.errors import UntwineError


class SupervisedDictionary:
    """Mean activation per factor value minus the overall mean (module docstring).

    ``factor_sizes`` fixes the number of values of each factor (default: the largest
    value seen in :meth:`fit` plus one); a value absent from the fitted rows gets a zero
    vector and is listed in ``missing_``.
    """

    def __init__(self, factor_sizes=None) -> None:
        self.factor_sizes = None if factor_sizes is None else tuple(int(s) for s in factor_sizes)

    def fit(self, x, factors) -> SupervisedDictionary:
        a = as_codes(x, "activations")
        f = as_factors(factors, "factors", allow_constant=True)
        same_rows(a, f, "activations", "factors")
        sizes = self.factor_sizes or tuple(int(m) + 1 for m in f.max(axis=0))
        if len(sizes) != f.shape[1]:
            raise UntwineError(f"factor_sizes has {len(sizes)} entries but factors have {f.shape[1]} columns")
        if (f < 0).any() or (f >= np.asarray(sizes)).any():
            raise UntwineError(f"factors: values out of range for sizes {sizes}")
        self.factor_sizes = sizes
        self.mean_ = a.mean(axis=0)
        self.atoms_ = []
        self.missing_ = []
        for k, s in enumerate(sizes):
            onehot = np.eye(s)[f[:, k]]
            counts = onehot.sum(axis=0)
            means = (onehot.T @ a) / np.maximum(counts, 1)[:, None]
            atoms = np.where(counts[:, None] > 0, means - self.mean_, 0.0)
            self.missing_ += [(k, v) for v in np.flatnonzero(counts == 0).tolist()]
            self.atoms_.append(atoms)
        return self

    def _check(self, factors) -> np.ndarray:
        if not hasattr(self, "atoms_"):
            raise UntwineError("the supervised dictionary is not fitted; call fit(x, factors) first")
        f = as_factors(factors, "factors", allow_constant=True)
        if f.shape[1] != len(self.atoms_) or (f < 0).any() or (f >= np.asarray(self.factor_sizes)).any():
            raise UntwineError(f"factors must be [n, {len(self.atoms_)}] class indices within sizes {self.factor_sizes}")
        return f

    @property
    def dictionary(self) -> np.ndarray:
        """Every value vector, ``[sum_a |a|, D]``, factor by factor."""
        return np.concatenate(self.atoms_)

    def reconstruct(self, factors) -> np.ndarray:
        """``E[x] + sum_a u_{a, v_a}`` for each factor row."""
        f = self._check(factors)
        out = np.repeat(self.mean_[None], f.shape[0], 0)
        for k, atoms in enumerate(self.atoms_):
            out += atoms[f[:, k]]
        return out

    def fvu(self, x, factors) -> float:
        """Fraction of variance of ``x`` left unexplained by :meth:`reconstruct`."""
        return fvu(x, self.reconstruct(factors))

    def codes_from_factors(self, factors) -> np.ndarray:
        """Indicator codes ``[n, sum_a |a|]``: 1 for each of the row's values."""
        f = self._check(factors)
        return np.concatenate([np.eye(s)[f[:, k]] for k, s in enumerate(self.factor_sizes)], axis=1)

    def encode(self, x) -> np.ndarray:
        """Label-free codes ``[n, sum_a |a|]``: ``<x - E[x], u> / ||u||^2`` for each value vector (0 for zero vectors)."""
        if not hasattr(self, "atoms_"):
            raise UntwineError("the supervised dictionary is not fitted; call fit(x, factors) first")
        a = as_codes(x, "activations")
        d = self.dictionary
        if a.shape[1] != d.shape[1]:
            raise UntwineError(f"activations have {a.shape[1]} columns but the dictionary was fitted on {d.shape[1]}")
        sq = (d**2).sum(axis=1)
        return ((a - self.mean_) @ d.T) / np.where(sq > 0, sq, 1.0)

    def edit(self, x, factors, factor: int, new_values) -> np.ndarray:
        """``x - u_{a, v_a(x)} + u_{a, v'}`` for factor ``a = factor`` and new values ``v'`` (one per row)."""
        f = self._check(factors)
        a = as_codes(x, "activations")
        same_rows(a, f, "activations", "factors")
        new = np.asarray(new_values, dtype=np.int64).reshape(-1)
        if new.shape[0] != a.shape[0] or (new < 0).any() or (new >= self.factor_sizes[factor]).any():
            raise UntwineError(f"new values must be one class index in [0, {self.factor_sizes[factor]}) per row")
        atoms = self.atoms_[factor]
        return a - atoms[f[:, factor]] + atoms[new]


__all__ = ["SupervisedDictionary"]
