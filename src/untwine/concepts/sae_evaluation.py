"""A sparse autoencoder's codes scored as concepts, beside the concept baselines
(``untwine sae evaluate --factors``).

:func:`evaluate_concepts` scores the SAE's codes on the same train / test rows as the
baselines of :mod:`untwine.concepts.baselines` (raw activations, PCA with as many
components as latents, the supervised dictionary): test FVU, the suite, k-sparse probing
and an edit test on the SAE's latents (:class:`LatentEdit`); it also keeps the factor x
latent matrices and top sentences for the report (``DIR/evaluation.json``,
:mod:`untwine.viz.sae_report`).  :func:`concept_table` lays the scores side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from untwine.concepts.baselines import SUITE_ROWS
from untwine.errors import UntwineError
from untwine.metrics.dci import remember_importance

#: file in the SAE directory holding the concept evaluation the report reads
EVALUATION = "evaluation.json"
#: latents per factor the SAE edit test moves (the largest k of k-sparse probing)
EDIT_LATENTS = 5
#: latents per factor shown in the report (heatmap columns, top sentences)
SHOWN_PER_FACTOR = 4


class LatentEdit:
    """The edit test's ``edit`` for an SAE: set a factor's latents to the target value's mean code.

    For factor ``a``, ``S_a`` is the ``m`` latents with the largest correlation ratio
    ``eta^2`` for ``a`` on the train codes (the ranking of k-sparse probing) and
    ``mu_{a,v}`` the mean train code on ``S_a`` of the rows with ``a = v``.  Editing a row
    to value ``v'`` sets ``c[S_a] = mu_{a,v'}`` in its code ``c`` (other latents kept) and
    moves the row by the difference of the decodings, ``x' = x + decode(c') - decode(c)``
    ``= x + (mu_{a,v'} - c[S_a]) W_dec[S_a]``: the row moves along the decoder directions
    of ``S_a`` only and keeps what the SAE does not reconstruct.  The code and decoding of the
    last ``x`` are kept, so editing each factor of the same rows encodes them once.
    """

    def __init__(self, module, codes_train, factors_train, sizes, *, m: int = EDIT_LATENTS) -> None:
        from untwine.concepts.probing import correlation_ratios

        self.module = module
        self.latents, self.means = [], []
        self._last = (None, None, None, None)  # (x, its tensor, code, decoding)
        etas = correlation_ratios(codes_train, factors_train[:, : len(sizes)])
        for a, size in enumerate(sizes):
            s = np.argsort(-etas[a], kind="stable")[:m]
            onehot = np.eye(size)[factors_train[:, a]]
            sums = onehot.T @ codes_train[:, s]
            self.latents.append(s)
            self.means.append(sums / np.maximum(onehot.sum(0), 1)[:, None])

    def __call__(self, x, factors, a: int, new_values) -> np.ndarray:
        dev = next(self.module.parameters()).device
        if self._last[0] is not x:
            xt = torch.as_tensor(np.asarray(x, np.float32), device=dev)
            c = self.module.encode(xt)
            self._last = (x, xt, c, self.module.decode(c))
        _, xt, c, dec = self._last
        c2 = c.clone()
        c2[:, torch.as_tensor(self.latents[a], device=dev)] = torch.as_tensor(
            self.means[a][np.asarray(new_values)], dtype=c.dtype, device=dev)
        return (xt + self.module.decode(c2) - dec).double().cpu().numpy()


def check_factors(factors, rows: int) -> np.ndarray:
    """``factors`` as non-negative integer classes ``[N, K]``, one row per activation row (else one line)."""
    from untwine._checks import as_factors, nonnegative_factors

    factors = nonnegative_factors(as_factors(factors, "factors"))
    if factors.shape[0] != rows:
        raise UntwineError(f"factors have {factors.shape[0]} rows but the activations have {rows}; give one row of factors per activation row")
    return factors


@remember_importance()  # the suite's DCI fit of the SAE's codes also gives the importance heatmap
def evaluate_concepts(sae, acts, factors, *, baselines: bool = True, factor_names=None, factor_sizes=None,
                      sentences=None, rows=None, metrics: str = "all", seed: int = 0, device: str = "auto",
                      top_n: int = 5, images=None, suite_rows: int | None = SUITE_ROWS,
                      progress=False) -> dict[str, Any]:
    """The SAE's codes beside the concept baselines on the same train / test rows.

    Rows are split by :func:`untwine.concepts.baselines.split_rows` (``seed``).  ``sae``: the SAE's
    test FVU, :func:`~untwine.concepts.baselines.score_codes` (the suite fitted on the train rows,
    k-sparse probing) and the edit test (:class:`LatentEdit`, judged by the same linear
    probes on raw activations as the supervised dictionary's edit);  ``baselines``:
    :func:`~untwine.concepts.baselines.concept_baselines` with as many PCA components as latents.
    ``metrics`` selects the SAE's suite metrics (the baselines get the whole suite).
    ``suite_rows``: above this many rows the suite and the DCI importance matrix of every code
    set run on one seeded subsample of each split (:func:`~untwine.concepts.baselines.suite_sample`,
    recorded in ``settings`` as ``suite_train_rows`` / ``suite_test_rows``); ``None`` or 0: every row.
    ``matrices``: normalised MI (all rows) and DCI importance (the suite's rows) of latents vs
    factors, ``[d_sae, K]``; ``shown``: the :data:`SHOWN_PER_FACTOR` latents of largest
    normalised MI per factor; ``top_sentences``: for those, the ``top_n`` sentences of
    largest code when ``sentences`` (and ``rows``, each activation row's sentence) are given;
    ``top_images``: the same for inputs drawn from a dataset (``images``, see :func:`image_record`).
    ``progress``: a :class:`untwine.progress.Phases` (or True for one) showing each phase.
    Every row is read into memory (concept corpora are small).
    """
    from untwine.activations.reader import open_activations
    from untwine.concepts.baselines import LABELS, code_set, concept_baselines, score_codes, split_rows, suite_sample
    from untwine.concepts.edit import edit_test
    from untwine.concepts.probing import LinearProbes
    from untwine.concepts.reconstruction import fvu
    from untwine.progress import Phases
    from untwine.sae.encode import load_usable_sae
    from untwine.device import resolve_device
    from untwine.metrics.matrices import dci_importance, normalized_mi

    phases = progress if isinstance(progress, Phases) else Phases(bool(progress))
    module = sae if isinstance(sae, torch.nn.Module) else load_usable_sae(sae, resolve_device(device))
    source = open_activations(acts)
    fac = check_factors(factors, source.rows)
    if source.dim != module.d_in:
        raise UntwineError(f"{source.name} has {source.dim} columns but the SAE takes d_in = {module.d_in}")
    K = fac.shape[1]
    names = [str(n) for n in factor_names] if factor_names is not None and len(factor_names) == K else [f"factor {k}" for k in range(K)]
    sizes = [int(s) for s in factor_sizes] if factor_sizes is not None and len(factor_sizes) == K else None
    sizes = [max(int(m) + 1, s) for m, s in zip(fac.max(0), sizes or [0] * K)]
    sae_label = LABELS["sae"]
    with phases.phase(f"{sae_label}: encoding", total=source.rows) as ph:
        x = source.read(0, source.rows).astype(np.float64)
        dev = next(module.parameters()).device
        pairs = []
        with torch.no_grad():
            for a in range(0, len(x), 8192):
                pairs.append(module.reconstruct(torch.from_numpy(x[a : a + 8192].astype(np.float32)).to(dev)))
                ph.advance(len(pairs[-1][0]))
        codes = np.concatenate([c.double().cpu().numpy() for c, _ in pairs])
        x_hat = np.concatenate([h.double().cpu().numpy() for _, h in pairs])
    tr, te = split_rows(len(x), seed)
    picked = suite_sample(len(tr), len(te), suite_rows, seed)
    s_tr, s_te = (tr, te) if picked is None else (tr[picked[0]], te[picked[1]])
    test_fvu = fvu(x[te], x_hat[te], undefined="nan")
    with code_set(sae_label, phases):
        sae_scores = score_codes(codes[tr], codes[te], fac[tr], fac[te], fvu=test_fvu, factor_names=names, seed=seed,
                                 suite=metrics == "all", suite_rows=picked)
        if metrics != "all":
            from untwine.metrics.suite import evaluate_arrays

            sae_scores.update(evaluate_arrays(codes[s_tr], fac[s_tr], codes[s_te], fac[s_te], metrics=metrics, seed=seed))
    with code_set(LABELS["raw"], phases, "linear probes of the edit tests"):
        probes = LinearProbes().fit(x[tr], fac[tr], seed=seed)
    with code_set(sae_label, phases, "edit test"):
        edit = LatentEdit(module, codes[tr], fac[tr], sizes)
        sae_scores.update(edit_test(x[te], fac[te], probes, edit, factor_names=names, factor_sizes=sizes, seed=seed))
    base = (concept_baselines(x[tr], fac[tr], x[te], fac[te], num_latents=module.d_sae, factor_names=names,
                              factor_sizes=sizes, seed=seed, suite_rows=picked, probes=probes, phases=phases)
            if baselines else None)
    with code_set(sae_label, phases, "normalised MI and DCI importance matrices"):
        nmi = normalized_mi(codes, fac)
        try:
            imp = dci_importance(codes[s_tr], fac[s_tr], codes[s_te], fac[s_te], seed=seed)
        except UntwineError:
            imp = None  # e.g. every latent dead on these rows
    shown: list[int] = []
    for k in range(K):
        shown += [int(j) for j in np.argsort(-nmi[:, k], kind="stable")[:SHOWN_PER_FACTOR] if nmi[j, k] > 0 and int(j) not in shown]
    tops = {}
    if rows is not None and len(rows) != len(x):
        sentences = None  # rows.npy of another run than these activations: no sentences rather than wrong ones
    if sentences is not None and shown:
        from untwine.concepts.top_sentences import top_sentences

        tops = {str(j): [[v, s] for v, s in lst] for j, lst in
                top_sentences(codes, sentences, rows=rows, latents=shown, n=top_n).items()}
    return {
        "factor_names": names, "factor_sizes": sizes, "sae": sae_scores, "baselines": base,
        "edit_latents": [[int(j) for j in s] for s in edit.latents],
        "matrices": {"normalized_mi": nmi.tolist(), "dci_importance": None if imp is None else imp.tolist()},
        "shown": shown, "top_sentences": tops, **image_record(codes, images, rows, shown, top_n),
        "settings": {"rows": len(x), "train_rows": len(tr), "test_rows": len(te), "seed": int(seed),
                     "suite_train_rows": len(s_tr), "suite_test_rows": len(s_te),
                     "suite_subsampled": picked is not None, "suite_rows_limit": int(suite_rows or 0),
                     "d_in": int(module.d_in), "d_sae": int(module.d_sae), "edit_latents_per_factor": EDIT_LATENTS},
        "seconds": {k: round(v, 3) for k, v in phases.seconds.items()},
    }


def image_record(codes, images, rows, shown, top_n: int) -> dict[str, Any]:
    """``{"top_images": ...}`` (:func:`untwine.concepts.top_inputs.top_images`) when the activations
    came from a dataset (``images``: the folder's context entry) and ``rows`` matches the codes, else ``{}``."""
    if images is None or rows is None or len(rows) != len(codes) or not shown:
        return {}
    from untwine.concepts.top_inputs import top_images

    return {"top_images": top_images(codes, images, rows=rows, latents=shown, n=top_n)}


def evaluate_concepts_paths(sae_dir, acts, factors, *, factor_key: str | None = None, **kw) -> dict[str, Any]:
    """:func:`evaluate_concepts` with the factors read from a file and, for a layer directory of an
    activations folder, the factor names, sentences and rows from the folder
    (:meth:`~untwine.activations.layout.ActivationFolder.context`)."""
    from pathlib import Path

    from untwine.activations.layout import ActivationFolder
    from untwine.arrays import read_array

    fac = read_array(factors, factor_key) if isinstance(factors, (str, Path)) else factors
    folder = ActivationFolder.of_layer(acts)
    return evaluate_concepts(sae_dir, acts, fac, **(folder.context() if folder is not None else {}), **kw)


#: columns of the comparison table: the SAE, then the baselines of :func:`untwine.concepts.baselines.concept_baselines`
TABLE_CODES = ("sae", "raw", "pca", "supervised", "supervised_projection")
#: row names of the table that differ from their keys (the reconstruction scores of ``sae evaluate`` are on every row)
TABLE_LABELS = {"fvu": "fvu (test rows)"}


def concept_table(evaluation) -> tuple[list[str], list[list[Any]]]:
    """``(header, rows)``: one row per score of the SAE (per-factor scores left out), one column
    per code set; the supervised column's edit scores are its dictionary's edit test."""
    factor_tail = tuple(f"_{n}" for n in evaluation.get("factor_names", ()))
    sae = evaluation["sae"]
    keys = [k for k, v in sae.items() if isinstance(v, (int, float)) and k != "seconds" and not k.endswith(factor_tail)]
    cols = [dict(sae)]
    base = evaluation.get("baselines") or {}
    names = [c for c in TABLE_CODES[1:] if c in base]
    for c in names:
        cols.append({**base[c], **(base.get("edit", {}) if c == "supervised" else {})})
    nan = float("nan")
    rows = [[TABLE_LABELS.get(k, k), *(nan if col.get(k) is None or isinstance(col.get(k), str) else float(col[k])
                                       for col in cols)] for k in keys]
    return ["score", "this SAE", *names], rows


__all__ = ["EDIT_LATENTS", "EVALUATION", "SHOWN_PER_FACTOR", "TABLE_CODES", "LatentEdit", "concept_table",
           "evaluate_concepts", "evaluate_concepts_paths", "image_record"]
