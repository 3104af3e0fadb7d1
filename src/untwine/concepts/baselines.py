"""Concept baselines side by side: what any dictionary of the same activations is compared with.

:func:`score_codes` scores one code set against the factors: the disentanglement suite
(:func:`untwine.metrics.suite.evaluate_arrays`, fitted on the train rows, reported as the
suite does), k-sparse probing (k = 1, 2, 5; :mod:`untwine.concepts.probing`) and, when given,
the test FVU of the code set's reconstruction.

:func:`concept_baselines` computes, on the same train/test rows:

* ``raw``: the activations themselves (the neuron basis; FVU 0);
* ``pca``: PCA with as many components as the dictionary has latents (at most the
  width and the train rows; :mod:`untwine.concepts.pca`);
* ``supervised``: the supervised dictionary's indicator codes (:mod:`untwine.concepts.supervised_dictionary`),
  the reference of what a perfect concept dictionary scores, with its reconstruction FVU;
* ``supervised_projection``: its label-free projection codes;
* ``edit``: the edit test of the supervised dictionary (:mod:`untwine.concepts.edit`) judged by
  linear probes fitted on the raw train activations, whose test accuracy is ``probe_accuracy``.
"""

from __future__ import annotations

import time

import numpy as np

from untwine._checks import as_codes, as_factors, same_rows
from untwine.errors import UntwineError


def split_rows(n: int, seed: int = 0, fraction: float = 2 / 3) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / test row indices (``fraction`` of the rows for training), each sorted."""
    if n < 3:
        raise UntwineError(f"need at least 3 rows to split into train and test, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    cut = min(n - 1, max(1, round(n * fraction)))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def score_codes(codes_train, codes_test, factors_train, factors_test, *, fvu: float | None = None,
                factor_names=None, seed: int = 0, suite: bool = True) -> dict[str, float]:
    """Suite scores, k-sparse probing accuracies and ``fvu`` of one code set (module docstring).

    A suite that cannot run on the codes (e.g. every latent constant) is reported as
    ``suite_error`` instead of raising.
    """
    from untwine.concepts.probing import sparse_probing

    t = time.perf_counter()
    ctr = as_codes(codes_train, "codes_train")
    out: dict = {"latents": float(ctr.shape[1])}
    if fvu is not None:
        out["fvu"] = float(fvu)
    if suite:
        from untwine.metrics.suite import evaluate_arrays

        try:
            out.update(evaluate_arrays(codes_train, factors_train, codes_test, factors_test, seed=seed))
        except UntwineError as exc:
            out["suite_error"] = str(exc)
    out.update(sparse_probing(codes_train, factors_train, codes_test, factors_test, factor_names=factor_names, seed=seed))
    out["seconds"] = time.perf_counter() - t
    return out


def concept_baselines(x_train, factors_train, x_test, factors_test, *, num_latents: int, factor_names=None,
                      factor_sizes=None, seed: int = 0, suite: bool = True) -> dict[str, dict]:
    """Every baseline of the module docstring on the same rows: ``{name: scores}``."""
    from untwine.concepts.edit import edit_test
    from untwine.concepts.pca import PCA
    from untwine.concepts.probing import LinearProbes
    from untwine.concepts.reconstruction import fvu
    from untwine.concepts.supervised_dictionary import SupervisedDictionary

    xtr, xte = as_codes(x_train, "activations_train"), as_codes(x_test, "activations_test")
    ftr = as_factors(factors_train, "factors_train")
    fte = as_factors(factors_test, "factors_test", allow_constant=True)
    same_rows(xtr, ftr, "activations_train", "factors_train")
    same_rows(xte, fte, "activations_test", "factors_test")
    sizes = tuple(factor_sizes) if factor_sizes is not None else tuple(
        int(m) + 1 for m in np.maximum(ftr.max(0), fte.max(0)))
    kw = {"factor_names": factor_names, "seed": seed, "suite": suite}
    out: dict[str, dict] = {}
    out["raw"] = score_codes(xtr, xte, ftr, fte, fvu=0.0, **kw)
    pca = PCA(num_latents).fit(xtr)
    ptr, pte = pca.encode(xtr), pca.encode(xte)
    out["pca"] = score_codes(ptr, pte, ftr, fte, fvu=fvu(xte, pca.decode(pte)), **kw)
    sd = SupervisedDictionary(sizes).fit(xtr, ftr)
    out["supervised"] = score_codes(sd.codes_from_factors(ftr), sd.codes_from_factors(fte), ftr, fte,
                                    fvu=sd.fvu(xte, fte), **kw)
    out["supervised_projection"] = score_codes(sd.encode(xtr), sd.encode(xte), ftr, fte, **kw)
    probes = LinearProbes().fit(xtr, ftr, seed=seed)
    names = list(factor_names) if factor_names is not None else [str(k) for k in range(ftr.shape[1])]
    out["probe_accuracy"] = dict(zip(names, map(float, probes.accuracy(xte, fte))))
    out["edit"] = edit_test(xte, fte, probes, sd.edit, factor_names=names, factor_sizes=sizes, seed=seed)
    return out


__all__ = ["concept_baselines", "score_codes", "split_rows"]
