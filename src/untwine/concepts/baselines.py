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

The suite's cost grows with rows times latents (InfoMEC's neighbour searches, the pairwise
``mutual_info_score``, DCI's boosted trees): on 100,000 rows of 512 latents it took minutes.
``suite_rows`` (positions from :func:`suite_sample`) runs it on a seeded subsample of each
split; k-sparse probing, the reconstruction and the edit test always use every row.  Without
it, or when the rows fit in :data:`SUITE_ROWS`, the suite sees every row and the scores are
those of the whole split.  Warnings name the code set they concern (``raw activations: ...``).
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

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


#: rows (train + test) the suite runs on in ``untwine sae evaluate`` by default; more are subsampled
SUITE_ROWS = 6000
#: the name each code set's warnings and progress lines carry
LABELS = {"sae": "SAE codes", "raw": "raw activations", "pca": "PCA", "supervised": "supervised dictionary",
          "supervised_projection": "supervised projection"}


def suite_sample(n_train: int, n_test: int, max_rows: int | None = SUITE_ROWS, seed: int = 0):
    """Positions ``(train, test)`` of the rows the suite runs on, or ``None`` for every row.

    Every row when ``max_rows`` is ``None`` or 0 or ``n_train + n_test <= max_rows``; otherwise
    ``max_rows`` rows, shared between the splits in proportion to their sizes (at least 2
    each), drawn without replacement by ``numpy.random.default_rng([seed, 1])``, sorted.
    """
    if max_rows is not None and (isinstance(max_rows, bool) or int(max_rows) < 0 or 0 < int(max_rows) < 6):
        raise UntwineError(f"suite rows must be 0 (every row) or at least 6, got {max_rows}")
    if not max_rows or n_train + n_test <= int(max_rows):
        return None
    k_train = min(n_train, max(2, round(int(max_rows) * n_train / (n_train + n_test))))
    k_test = min(n_test, max(2, int(max_rows) - k_train))
    rng = np.random.default_rng([int(seed), 1])
    return (np.sort(rng.choice(n_train, k_train, replace=False)), np.sort(rng.choice(n_test, k_test, replace=False)))


@contextmanager
def code_set(label: str, phases=None, what: str = "suite and sparse probing"):
    """Work on one code set: a progress phase ``label: what`` and every warning raised inside
    re-issued once, prefixed with ``label: `` (so a reader knows which code set it concerns)."""
    import warnings

    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with phases.phase(f"{label}: {what}") if phases is not None else nullcontext():
                yield
    finally:
        seen = set()
        for w in caught:
            msg = f"{label}: {w.message}"
            if (msg, w.category) not in seen:
                seen.add((msg, w.category))
                warnings.warn_explicit(msg, w.category, w.filename, w.lineno)


def score_codes(codes_train, codes_test, factors_train, factors_test, *, fvu: float | None = None,
                factor_names=None, seed: int = 0, suite: bool = True, suite_rows=None) -> dict[str, float]:
    """Suite scores, k-sparse probing accuracies and ``fvu`` of one code set (module docstring).

    ``suite_rows``: positions ``(train, test)`` of the rows the suite runs on (:func:`suite_sample`;
    default every row).  A suite that cannot run on the codes (e.g. every latent constant) is
    reported as ``suite_error`` instead of raising.  BLAS runs one thread here: the suite's
    products are small and extra threads only spin (the covariance eigenvalues of 512 latents:
    0.3 CPU-s with one thread, 2 to 4 with two on a shared machine); the Gaussian Wasserstein
    correlation's eigenvalues then round as with ``OMP_NUM_THREADS=1`` (within 1e-8 relative).
    """
    from untwine.blas import one_blas_thread

    with one_blas_thread():
        return _score_codes(codes_train, codes_test, factors_train, factors_test, fvu, factor_names, seed, suite, suite_rows)


def _score_codes(codes_train, codes_test, factors_train, factors_test, fvu, factor_names, seed, suite, suite_rows):
    from untwine.concepts.probing import sparse_probing

    t = time.perf_counter()
    ctr = as_codes(codes_train, "codes_train")
    out: dict = {"latents": float(ctr.shape[1])}
    if fvu is not None:
        out["fvu"] = float(fvu)
    if suite:
        from untwine.metrics.suite import evaluate_arrays

        ctr_s, ftr_s, cte_s, fte_s = codes_train, factors_train, codes_test, factors_test
        if suite_rows is not None:
            a, b = suite_rows
            ctr_s, ftr_s = np.asarray(codes_train)[a], np.asarray(factors_train)[a]
            cte_s, fte_s = np.asarray(codes_test)[b], np.asarray(factors_test)[b]
        try:
            out.update(evaluate_arrays(ctr_s, ftr_s, cte_s, fte_s, seed=seed))
        except UntwineError as exc:
            out["suite_error"] = str(exc)
    out.update(sparse_probing(codes_train, factors_train, codes_test, factors_test, factor_names=factor_names, seed=seed))
    out["seconds"] = time.perf_counter() - t
    return out


def concept_baselines(x_train, factors_train, x_test, factors_test, *, num_latents: int, factor_names=None,
                      factor_sizes=None, seed: int = 0, suite: bool = True, suite_rows=None, probes=None,
                      phases=None) -> dict[str, dict]:
    """Every baseline of the module docstring on the same rows: ``{name: scores}``.

    ``suite_rows``: as :func:`score_codes`; ``probes``: linear probes already fitted on
    ``x_train`` (:class:`~untwine.concepts.probing.LinearProbes`, the same seed), else fitted
    here; ``phases``: a :class:`untwine.progress.Phases` showing one phase per code set.
    """
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
    kw = {"factor_names": factor_names, "seed": seed, "suite": suite, "suite_rows": suite_rows}
    out: dict[str, dict] = {}
    with code_set(LABELS["raw"], phases):
        out["raw"] = score_codes(xtr, xte, ftr, fte, fvu=0.0, **kw)
    with code_set(LABELS["pca"], phases):
        pca = PCA(num_latents).fit(xtr)
        ptr, pte = pca.encode(xtr), pca.encode(xte)
        out["pca"] = score_codes(ptr, pte, ftr, fte, fvu=fvu(xte, pca.decode(pte)), **kw)
    with code_set(LABELS["supervised"], phases):
        sd = SupervisedDictionary(sizes).fit(xtr, ftr)
        out["supervised"] = score_codes(sd.codes_from_factors(ftr), sd.codes_from_factors(fte), ftr, fte,
                                        fvu=sd.fvu(xte, fte), **kw)
    with code_set(LABELS["supervised_projection"], phases):
        out["supervised_projection"] = score_codes(sd.encode(xtr), sd.encode(xte), ftr, fte, **kw)
    with code_set(LABELS["supervised"], phases, "edit test"):
        if probes is None:
            probes = LinearProbes().fit(xtr, ftr, seed=seed)
        names = list(factor_names) if factor_names is not None else [str(k) for k in range(ftr.shape[1])]
        out["probe_accuracy"] = dict(zip(names, map(float, probes.accuracy(xte, fte))))
        out["edit"] = edit_test(xte, fte, probes, sd.edit, factor_names=names, factor_sizes=sizes, seed=seed)
    return out


__all__ = ["LABELS", "SUITE_ROWS", "code_set", "concept_baselines", "score_codes", "split_rows", "suite_sample"]
