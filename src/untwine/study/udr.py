"""UDR: unsupervised model selection across the seeds of one configuration.

Reference: Duan, Matthey, Saraiva, Watters, Burgess, Lerchner, Higgins (2020),
"Unsupervised Model Selection for Variational Disentangled Representation
Learning", ICLR (arXiv:1905.12614); disentanglement_lib function
``evaluation.udr.metrics.udr.compute_udr_sklearn``.

The idea: a disentangled representation is found again (up to permutation and
sign of its latents) by every seed of a configuration, an entangled one is not.
For two models ``a`` and ``b`` encoding the same ``N`` inputs, a similarity
matrix ``R[i, j]`` between latent ``i`` of ``a`` and latent ``j`` of ``b`` is

* ``"spearman"`` (the paper's UDR_S, the default here): the absolute Spearman
  rank correlation of the two latents' mean representations;
* ``"lasso"`` (UDR_L): the absolute coefficients of a Lasso regression
  (``alpha=0.1``) predicting ``b``'s standardised latents from ``a``'s.

Only *informative* latents enter: those whose average KL divergence from the
prior exceeds ``kl_threshold`` (0.01).  With ``d_a``, ``d_b`` informative latents,

    UDR_ab = 1 / (d_a + d_b) * [ sum_j max_i R[i,j]^2 / sum_i R[i,j]
                                + sum_i max_j R[i,j]^2 / sum_j R[i,j] ]

(a column or row of zeros contributes 0).  Each term is 1 for a one-to-one
match of latents, so identical models up to permutation and sign score 1, and
models whose latents each mix several of the other's score less.  A model's
UDR is the median of ``UDR_ab`` over all other models ``b`` of its
configuration.

Defaults and deviations, documented: disentanglement_lib averages the column
term and the row term with equal weight (``(mean_j + mean_i) / 2``); the
paper, followed here, weights them by ``d_b`` and ``d_a`` -- identical when
both models have the same number of informative latents.  A model with no
informative latent scores 0 against every other.  Without KL values
(deterministic encoders) every latent counts as informative; constant latents
correlate with nothing (R = 0).

In a study (:func:`compute_study_udr`, after the runs): every configuration with at
least two finished seeds; each run's model encodes the same ``udr.num_points`` inputs
of its dataset and the per-run score goes into the results database's ``metrics`` table
as ``udr`` (recomputed only when the runs or the settings changed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import rankdata

from untwine._checks import as_codes
from untwine.errors import UntwineError
from untwine.study import results as db
from untwine.study.folder import run_dir
from untwine.study.worker import one_line

CORRELATIONS = ("spearman", "lasso")
KL_THRESHOLD = 0.01
LASSO_ALPHA = 0.1


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    out = x - x.mean(axis=0)
    nz = sd > 1e-12
    out[:, nz] /= sd[nz]
    out[:, ~nz] = 0.0
    return out


def similarity_matrix(a, b, correlation: str = "spearman", *, seed: int = 0) -> np.ndarray:
    """``R[i, j]`` in [0, 1]-ish between latent ``i`` of codes ``a`` [N, Da] and latent ``j`` of ``b`` [N, Db]."""
    if correlation not in CORRELATIONS:
        raise UntwineError(f"UDR correlation must be one of {', '.join(CORRELATIONS)}, got {correlation!r}")
    a = as_codes(a, "representation a")
    b = as_codes(b, "representation b")
    if a.shape[0] != b.shape[0]:
        raise UntwineError(f"UDR: the two representations encode {a.shape[0]} and {b.shape[0]} inputs; they must encode the same inputs")
    if a.shape[0] < 3:
        raise UntwineError(f"UDR needs at least 3 inputs, got {a.shape[0]}")
    if correlation == "spearman":
        ra = _standardise(rankdata(a, axis=0))
        rb = _standardise(rankdata(b, axis=0))
        return np.abs(ra.T @ rb) / a.shape[0]
    from sklearn.linear_model import Lasso

    za, zb = _standardise(a.copy()), _standardise(b.copy())
    model = Lasso(alpha=LASSO_ALPHA, random_state=int(seed))
    model.fit(za, zb)
    coef = np.asarray(model.coef_).reshape(zb.shape[1], za.shape[1])  # [Db, Da]
    return np.abs(coef.T)


def _informative(kl, d: int, threshold: float, name: str) -> np.ndarray:
    if kl is None:
        return np.ones(d, dtype=bool)
    k = np.asarray(kl, dtype=np.float64).reshape(-1)
    if k.shape[0] != d:
        raise UntwineError(f"UDR: {name} has {k.shape[0]} KL values for {d} latents")
    if not np.all(np.isfinite(k)):
        raise UntwineError(f"UDR: {name} holds non-finite KL values")
    return k > threshold


def udr_from_matrix(R: np.ndarray) -> float:
    """The paper's UDR_ab of a similarity matrix already restricted to informative latents."""
    R = np.asarray(R, dtype=np.float64)
    d_a, d_b = R.shape
    if d_a == 0 or d_b == 0:
        return 0.0
    R = np.nan_to_num(np.abs(R), nan=0.0)

    def term(axis: int) -> float:
        s = R.sum(axis=axis)
        m = R.max(axis=axis)
        ratio = np.divide(m**2, s, out=np.zeros_like(s), where=s > 0)
        return float(ratio.sum())

    return (term(0) + term(1)) / (d_a + d_b)


def udr_pairwise(
    representations: Sequence,
    kl: Sequence | None = None,
    *,
    correlation: str = "spearman",
    kl_threshold: float = KL_THRESHOLD,
    seed: int = 0,
) -> np.ndarray:
    """The ``[M, M]`` matrix of ``UDR_ab`` between models (diagonal NaN); see the module docstring."""
    reps = [as_codes(r, f"representation {i}") for i, r in enumerate(representations)]
    if len(reps) < 2:
        raise UntwineError(f"UDR compares models across seeds: needs at least 2 representations, got {len(reps)}")
    if kl is not None and len(kl) != len(reps):
        raise UntwineError(f"UDR: {len(kl)} KL vectors for {len(reps)} representations")
    n = reps[0].shape[0]
    for i, r in enumerate(reps):
        if r.shape[0] != n:
            raise UntwineError(f"UDR: representation {i} encodes {r.shape[0]} inputs, representation 0 encodes {n}; encode the same inputs")
    masks = [
        _informative(None if kl is None else kl[i], r.shape[1], kl_threshold, f"representation {i}") for i, r in enumerate(reps)
    ]
    m = len(reps)
    out = np.full((m, m), np.nan)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            if correlation == "spearman" and j < i:
                out[i, j] = out[j, i]  # symmetric
                continue
            a, b = reps[i][:, masks[i]], reps[j][:, masks[j]]
            if a.shape[1] == 0 or b.shape[1] == 0:
                out[i, j] = 0.0
                continue
            out[i, j] = udr_from_matrix(similarity_matrix(a, b, correlation, seed=seed))
    return out


def udr_scores(
    representations: Sequence,
    kl: Sequence | None = None,
    *,
    correlation: str = "spearman",
    kl_threshold: float = KL_THRESHOLD,
    seed: int = 0,
) -> np.ndarray:
    """Per-model UDR: the median over the other models of ``UDR_ab`` (float64 array ``[M]``).

    ``representations``: one ``[N, D_m]`` array of mean representations per model
    (the same ``N`` inputs, in the same order, for every model); ``kl``: one ``[D_m]``
    array of average per-latent KL divergences per model, or None (all latents
    informative).  See the module docstring for the definition.
    """
    pair = udr_pairwise(representations, kl, correlation=correlation, kl_threshold=kl_threshold, seed=seed)
    m = pair.shape[0]
    return np.array([float(np.median(np.delete(pair[i], i))) for i in range(m)])


# -- UDR over the seeds of each configuration of a study ----------------------------------------
def representations_for_udr(run_dirs: list[Path], x, *, batch: int = 256) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Mean representations ``[N, D]`` and average per-latent KL ``[D]`` (None for deterministic encoders) of each run on ``x``."""
    from untwine.train import open_run

    reps, kls = [], []
    for d in run_dirs:
        encoded = open_run(d).encoder(batch_size=batch).encode(x, posterior=True)
        reps.append(encoded.codes)
        kls.append(encoded.latent_kl())
    return reps, kls


def compute_study_udr(
    spec,
    runs: list,
    out,
    *,
    result=None,
    say: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """UDR per run for every configuration with >= 2 finished seeds; stored as metric ``udr``.

    ``spec``: the :class:`~untwine.study.spec.StudySpec`; ``runs``: its
    :class:`~untwine.study.spec.RunSpec` list (:func:`~untwine.study.spec.expand`).

    ``result``: a :class:`~untwine.study.runner.StudyResult` to add the scores
    (``udr``) and the configurations whose UDR failed (``udr_errors``) to.
    """
    from untwine import data
    from untwine.train import open_run

    say = say or (lambda m: None)
    out = Path(out)
    conn = db.connect(db.db_path(out))
    scores: dict[str, float] = {}
    try:
        rows = db.run_rows(conn)
        groups: dict[str, list] = {}
        for r in runs:
            if rows.get(r.run_id, {}).get("status") == "done":
                groups.setdefault(r.config_id, []).append(r)
        settings = {k: spec.udr[k] for k in ("num_points", "correlation", "kl_threshold", "seed")}
        datasets: dict[str, Any] = {}
        for cid, members in groups.items():
            if len(members) < 2:
                continue
            members.sort(key=lambda r: r.seed)
            dirs = [run_dir(out, r.run_id) for r in members]
            try:
                sig = json.dumps({"runs": [[r.run_id, open_run(d).step] for r, d in zip(members, dirs)], **settings}, sort_keys=True)
                stored = {rid: v for rid, _, v in db.metric_values(conn, name="udr", run_ids=[r.run_id for r in members])
                          if v is not None}
                if db.get_meta(conn, f"udr:{cid}") == sig and set(stored) == {r.run_id for r in members}:
                    scores.update((rid, float(v)) for rid, v in stored.items())
                    continue
                ref = members[0].dataset_ref
                if ref not in datasets:  # the same inputs for every configuration on this dataset
                    import torch

                    rng = np.random.default_rng(int(settings["seed"]))
                    _, x = data.load(ref).sample(int(settings["num_points"]), rng)
                    datasets[ref] = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).float()
                reps, kls = representations_for_udr(dirs, datasets[ref])
                kl_arg = kls if all(k is not None for k in kls) else None
                s = udr_scores(reps, kl_arg, correlation=settings["correlation"], kl_threshold=settings["kl_threshold"], seed=settings["seed"])
                for r, v in zip(members, s):
                    db.record_metrics(conn, r.run_id, {"udr": float(v)}, replace=False)
                    scores[r.run_id] = float(v)
                db.set_meta(conn, f"udr:{cid}", sig)
                hp = ", ".join(f"{k}={v}" for k, v in members[0].hparams.items()) or "defaults"
                say(f"udr {members[0].model} ({hp}) on {members[0].dataset}, seeds {[r.seed for r in members]}: "
                    + ", ".join(f"{v:.3f}" for v in s))
            except Exception as exc:  # noqa: BLE001 - UDR must not lose the study's results
                msg = one_line(exc)
                if result is not None:
                    result.udr_errors[cid] = msg
                say(f"[red]UDR failed for {members[0].run_id} and its seeds: {msg}[/red]")
    finally:
        conn.close()
    if result is not None:
        result.udr.update(scores)
    return scores
