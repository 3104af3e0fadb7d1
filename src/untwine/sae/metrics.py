"""How good is an SAE: reconstruction, recovery of a known dictionary, quasi-orthogonality,
and the disentanglement suite on its codes.

All statistics stream over the activations in chunks (float64 sums), so they need no more
memory than one chunk plus ``[F, d_sae]`` cross sums; only ``factors`` (the suite) keeps
the codes.

Reconstruction
    ``fvu``: fraction of variance unexplained (:func:`untwine.concepts.reconstruction.fvu`,
    streamed here over chunks) = sum over rows of ``||x - x_hat||^2`` divided by the total
    variance *around the data mean*, ``sum ||x - mean(x)||^2``; undefined (null) without
    variance across rows.  ``explained_variance = 1 - fvu``.  ``mse``: mean squared error per element.
    ``cosine``: mean cosine between ``x`` and ``x_hat``.  ``l0``: mean non-zero codes per
    row.  ``dead_fraction``: latents that never fire on these rows; ``dense_fraction``:
    latents firing on more than 10% of rows.  ``shrinkage``: ``sum ||x_hat|| / sum ||x||``
    over the rows, the norm-weighted mean of the per-row ratio (rows of norm 0 would make
    the plain mean infinite); below 1 the codes shrink, as an L1 penalty makes them.

Against a known dictionary ``features [F, d_in]`` (and, when given, true codes ``[N, F]``)
    ``mmcs``: mean over true features of the maximum cosine similarity to any decoder row;
    ``recovered``: fraction of true features with that maximum above 0.9;
    ``mcc``: Pearson correlations between true and learnt codes, matched one-to-one by
    the Hungarian algorithm (maximum total correlation), averaged over the matched pairs;
    ``absorption``: for hierarchical features (parent -> children), the parent's latent is
    the decoder row closest to the parent's direction; among rows where the parent and one
    of its children fire, the fraction where that latent is silent (the child's latent
    absorbed it), averaged over parents.

Quasi-orthogonality (Lee et al. 2025)
    with ``z = x - b_dec`` and codes ``f`` scaled by their decoder-row norms,
    ``zf_deviation``: mean over rows with at least two active latents of
    ``| ||z||^2 - ||f||^2 | / ((L0 - 1) ||f||^2)``, the per-input estimate of the coherence
    bound ``| ||z||^2 - ||f||^2 | <= eps (L0 - 1) ||f||^2``; ``zf_norm_ratio``: mean
    ``||f|| / ||z||``; ``coherence_max`` / ``coherence_mean``: maximum and mean off-diagonal
    ``|W_dec W_dec^T|`` of the unit decoder rows.

Disentanglement (``factors [N, K]`` integer)
    the whole ``untwine score`` suite (:func:`untwine.metrics.suite.evaluate_arrays`) on the
    codes, under the same keys.

Concepts (``untwine sae evaluate --factors``)
    the SAE's codes beside the concept baselines, scored by the concept package:
    :mod:`untwine.concepts.sae_evaluation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from untwine.errors import UntwineError

#: latents firing on more than this fraction of rows are "dense"
DENSE_FREQUENCY = 0.1
#: cosine above which a true feature counts as recovered
RECOVERED_COSINE = 0.9


def _unit(w: np.ndarray) -> np.ndarray:
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


def dictionary_match(features, decoder) -> dict[str, float]:
    """``mmcs`` and ``recovered`` of true ``features [F, d]`` by ``decoder`` rows ``[d_sae, d]``."""
    cos = _unit(np.asarray(features, np.float64)) @ _unit(np.asarray(decoder, np.float64)).T
    best = cos.max(axis=1)
    return {"mmcs": float(best.mean()), "recovered": float((best > RECOVERED_COSINE).mean())}


def coherence(decoder) -> dict[str, float]:
    """Maximum and mean off-diagonal ``|cos|`` between decoder rows (chunked)."""
    w = torch.from_numpy(_unit(np.asarray(decoder, np.float64)))
    n = w.shape[0]
    mx, total = 0.0, 0.0
    for a in range(0, n, 4096):
        g = (w[a : a + 4096] @ w.T).abs()
        idx = torch.arange(a, min(n, a + 4096))
        g[idx - a, idx] = 0.0
        mx = max(mx, float(g.max()))
        total += float(g.sum())
    return {"coherence_max": mx, "coherence_mean": total / max(1, n * (n - 1))}


def mcc_from_sums(n, s_t, s_tt, s_f, s_ff, s_tf) -> float:
    """Hungarian-matched mean Pearson correlation from streamed sums."""
    from scipy.optimize import linear_sum_assignment

    mt, mf = s_t / n, s_f / n
    vt = np.maximum(s_tt / n - mt**2, 0.0)
    vf = np.maximum(s_ff / n - mf**2, 0.0)
    cov = s_tf / n - np.outer(mt, mf)
    denom = np.sqrt(np.outer(vt, vf))
    corr = np.where(denom > 1e-12, cov / np.maximum(denom, 1e-300), 0.0)
    r, c = linear_sum_assignment(corr, maximize=True)
    return float(corr[r, c].mean())


def evaluate_sae(
    sae,
    acts,
    *,
    features=None,
    true_codes=None,
    hierarchy=None,
    factors=None,
    metrics: str = "all",
    seed: int = 0,
    device: str = "auto",
    chunk_rows: int = 16384,
    key: str | None = None,
    progress=False,
) -> dict[str, Any]:
    """Every applicable metric of ``sae`` (directory or module) on ``acts`` (path or array).

    ``features [F, d_in]``: the true dictionary (MMCS, recovered); ``true_codes [N, F]``
    (dense or scipy sparse, rows aligned with ``acts``): MCC and, with ``hierarchy``
    (``[(parent, [children])]``), absorption; ``factors [N, K]``: the disentanglement suite
    on the codes (``metrics`` selects, as in ``untwine score``).  ``progress``: a
    :class:`untwine.progress.Phases` (or True for one) showing the pass over the rows.  Returns a flat dict.
    """
    import scipy.sparse as sp

    from untwine.activations.reader import open_activations
    from untwine.progress import Phases
    from untwine.sae.encode import load_usable_sae
    from untwine.device import resolve_device

    phases = progress if isinstance(progress, Phases) else Phases(bool(progress))
    dev = resolve_device(device)
    module = sae if isinstance(sae, torch.nn.Module) else load_usable_sae(sae, dev)
    if module.members != 1:
        raise UntwineError("evaluate one SAE at a time (this module holds several)")
    module = module.to(dev).eval()
    source = open_activations(acts, key)
    if source.dim != module.d_in:
        raise UntwineError(f"{source.name} has {source.dim} columns but the SAE takes d_in = {module.d_in}")
    N, d, h = source.rows, module.d_in, module.d_sae
    chunk_rows = max(256, min(chunk_rows, (1 << 24) // h))  # dense float64 codes of a chunk stay ~128 MB
    decoder = (module.W_dec[0].detach().double().cpu() / float(module.input_scale)).numpy()
    row_norm = np.linalg.norm(decoder, axis=1)
    b_dec = (module.b_dec[0].detach().double().cpu() / float(module.input_scale)).numpy()

    if features is not None:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != d:
            raise UntwineError(f"true features must be [F, {d}] (one direction per row), got shape {tuple(features.shape)}")
        if not np.isfinite(features).all():
            raise UntwineError("true features contain NaN or inf")
    if true_codes is not None:
        if true_codes.shape[0] != N:
            raise UntwineError(f"true codes have {true_codes.shape[0]} rows but the activations have {N}")
        true_codes = sp.csr_matrix(true_codes) if not sp.issparse(true_codes) else true_codes.tocsr()
    fac = None
    if factors is not None:
        from untwine._checks import as_factors, nonnegative_factors

        fac = nonnegative_factors(as_factors(factors, "factors"))
        if fac.shape[0] != N:
            raise UntwineError(f"factors have {fac.shape[0]} rows but the activations have {N}; give one row of factors per activation row")

    s_x = np.zeros(d)  # sums of x - shift (the first row): exact zero variance for constant rows
    s_xx = 0.0
    shift = None
    sse = 0.0
    cos_sum = 0.0
    l0_sum = 0.0
    ratio_sum = 0.0
    norm_sum = 0.0
    fires = np.zeros(h)
    zf_dev, zf_n, zf_ratio = 0.0, 0, 0.0
    F = true_codes.shape[1] if true_codes is not None else 0
    if true_codes is not None:
        s_t, s_tt = np.zeros(F), np.zeros(F)
        s_f, s_ff = np.zeros(h), np.zeros(h)
        s_tf = np.zeros((F, h))
    parent_latent = {}
    absorb = {}
    if hierarchy and true_codes is not None and features is not None:
        cos = _unit(features) @ _unit(decoder).T
        for p, kids in hierarchy:
            parent_latent[int(p)] = int(cos[int(p)].argmax())
            absorb[int(p)] = [0, 0]
    all_codes = np.empty((N, h), dtype=np.float32) if fac is not None else None

    with phases.phase("SAE codes: reconstruction and dictionary statistics", total=N) as ph:
        for a in range(0, N, chunk_rows):
            b = min(N, a + chunk_rows)
            ph.advance(b - a)
            x_np = source.read(a, b)
            x = torch.from_numpy(x_np).to(dev)
            codes, x_hat = module.reconstruct(x)
            c = codes.double().cpu().numpy()
            xh = x_hat.double().cpu().numpy()
            xd = x_np.astype(np.float64)
            shift = xd[0].copy() if shift is None else shift
            s_x += (xd - shift).sum(0)
            s_xx += float(((xd - shift) ** 2).sum())
            sse += float(((xd - xh) ** 2).sum())
            nx = np.linalg.norm(xd, axis=1)
            nh = np.linalg.norm(xh, axis=1)
            cos_sum += float(((xd * xh).sum(1) / np.maximum(nx * nh, 1e-12)).sum())
            ratio_sum += float(nh.sum())
            norm_sum += float(nx.sum())
            nz = c != 0
            l0 = nz.sum(1)
            l0_sum += float(l0.sum())
            fires += nz.sum(0)
            fz = np.linalg.norm(c * row_norm, axis=1)
            zn = np.linalg.norm(xd - b_dec, axis=1)
            zf_ratio += float((fz / np.maximum(zn, 1e-12)).sum())
            ok = (l0 >= 2) & (fz > 0)
            if ok.any():
                zf_dev += float((np.abs(zn[ok] ** 2 - fz[ok] ** 2) / ((l0[ok] - 1) * fz[ok] ** 2)).sum())
                zf_n += int(ok.sum())
            if true_codes is not None:
                t = true_codes[a:b]
                s_t += np.asarray(t.sum(0)).ravel()
                s_tt += np.asarray(t.multiply(t).sum(0)).ravel()
                s_f += c.sum(0)
                s_ff += (c**2).sum(0)
                s_tf += np.asarray(t.T @ c)
                for p, kids in hierarchy or []:
                    if int(p) not in parent_latent:
                        continue
                    tp = t[:, [int(p)] + [int(k) for k in kids]].toarray() > 0
                    both = tp[:, 0] & tp[:, 1:].any(1)
                    absorb[int(p)][0] += int(both.sum())
                    absorb[int(p)][1] += int((both & (c[:, parent_latent[int(p)]] == 0)).sum())
            if all_codes is not None:
                all_codes[a:b] = codes.float().cpu().numpy()

    mean = s_x / N
    total_var = s_xx - N * float(mean @ mean)
    # FVU is undefined without variance around the mean (one row, or every row the same)
    fvu_value = sse / total_var if total_var > 1e-12 * max(s_xx, 1e-300) and N > 1 else float("nan")
    out: dict[str, Any] = {
        "rows": N,
        "d_in": d,
        "d_sae": h,
        "fvu": fvu_value,
        "explained_variance": 1.0 - fvu_value,
        "mse": sse / (N * d),
        "cosine": cos_sum / N,
        "l0": l0_sum / N,
        "dead_fraction": float((fires == 0).mean()),
        "dense_fraction": float((fires / N > DENSE_FREQUENCY).mean()),
        "shrinkage": ratio_sum / max(norm_sum, 1e-300),
        "zf_deviation": zf_dev / zf_n if zf_n else float("nan"),
        "zf_norm_ratio": zf_ratio / N,
    }
    out.update(coherence(decoder))
    if features is not None:
        out.update(dictionary_match(features, decoder))
    if true_codes is not None:
        if true_codes.shape[1] != (features.shape[0] if features is not None else true_codes.shape[1]):
            raise UntwineError("true codes and true features disagree on the number of features")
        out["mcc"] = mcc_from_sums(N, s_t, s_tt, s_f, s_ff, s_tf)
    if absorb:
        rates = [m / n for n, m in absorb.values() if n > 0]
        out["absorption"] = float(np.mean(rates)) if rates else float("nan")
    if fac is not None:
        from untwine.metrics.suite import evaluate_arrays

        out.update(evaluate_arrays(all_codes, fac, metrics=metrics, seed=seed))
    return out


def undefined_scores(scores: dict[str, Any]) -> list[str]:
    """Keys of ``scores`` that are computed but undefined (NaN, infinite or None); warns once naming them."""
    import math
    import warnings

    from untwine.errors import UntwineWarning

    bad = [k for k, v in scores.items() if v is None or (isinstance(v, float) and not math.isfinite(v))]
    if bad:
        why = " (FVU needs variance across rows: more than one row, not all the same)" if "fvu" in bad else ""
        warnings.warn(f"undefined on these data, reported as null: {', '.join(bad)}{why}", UntwineWarning, stacklevel=2)
    return bad


def evaluate_paths(
    sae_dir,
    acts,
    *,
    features=None,
    true_codes=None,
    factors=None,
    metrics: str = "all",
    seed: int = 0,
    device: str = "auto",
    factor_key: str | None = None,
    progress=False,
) -> tuple[dict[str, Any], list[str]]:
    """:func:`evaluate_sae` with the ground truth read from files; returns ``(scores, notes)``.

    ``features``: ``.npy`` ``[F, d_in]``.  When ``true_codes`` is not given and the
    features file sits in a directory written by ``untwine sae synthetic`` whose
    ``codes.npz`` has one row per activation row, those codes (and ``synthetic.json``'s
    hierarchy) are used.  ``factors``: any file :func:`untwine.arrays.read_array` reads.
    """
    from pathlib import Path

    import scipy.sparse as sp

    from untwine.files import read_json
    from untwine.arrays import read_array
    from untwine.activations.reader import open_activations
    from untwine.sae.synthetic import CODES_FILE, META_FILE

    notes: list[str] = []
    source = open_activations(acts)
    feats = codes = hierarchy = None
    if features is not None:
        feats = read_array(features)
    if true_codes is None and features is not None:
        cand = Path(features).parent / CODES_FILE
        if cand.is_file():
            c = sp.load_npz(cand)
            if c.shape[0] == source.rows and feats is not None and c.shape[1] == feats.shape[0]:
                true_codes = cand
            else:
                notes.append(f"{cand} does not match the activations' rows; MCC skipped")
    if true_codes is not None:
        p = Path(true_codes)
        try:
            codes = sp.load_npz(p) if p.suffix == ".npz" and _is_sparse_npz(p) else read_array(p)
        except (OSError, ValueError) as exc:
            raise UntwineError(f"{p}: cannot read true codes ({exc})") from None
        notes.append(f"true codes: {p}")
        meta = p.parent / META_FILE
        if meta.is_file():
            hierarchy = [(int(a), [int(k) for k in kids]) for a, kids in read_json(meta).get("hierarchy", [])] or None
    fac = read_array(factors, factor_key) if factors is not None else None
    scores = evaluate_sae(
        sae_dir, source, features=feats, true_codes=codes, hierarchy=hierarchy, factors=fac,
        metrics=metrics, seed=seed, device=device, progress=progress,
    )
    return scores, notes


def _is_sparse_npz(path) -> bool:
    try:
        with np.load(path) as z:
            return "format" in z.files and "indptr" in z.files
    except (OSError, ValueError):
        return False
