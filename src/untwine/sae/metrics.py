"""How good is an SAE: reconstruction, recovery of a known dictionary, quasi-orthogonality,
and the disentanglement suite on its codes.

All statistics stream over the activations in chunks (float64 sums), so they need no more
memory than one chunk plus ``[F, d_sae]`` cross sums; only ``factors`` (the suite) keeps
the codes.

Reconstruction
    ``fvu``: fraction of variance unexplained = sum over rows of ``||x - x_hat||^2`` divided
    by the total variance *around the data mean*, ``sum ||x - mean(x)||^2``.  (Dividing by
    ``sum ||x||^2`` instead, or averaging per-dimension ratios, gives a different and
    smaller number when the data have a non-zero mean - a known pitfall.)
    ``explained_variance = 1 - fvu``.  ``mse``: mean squared error per element.
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

Concepts (:func:`evaluate_concepts`, ``untwine sae evaluate --factors``)
    the SAE's codes beside the concept baselines of :mod:`untwine.lm.baselines` (raw
    activations, PCA with as many components as latents, the supervised dictionary) on the
    same train / test rows: test FVU, the suite, k-sparse probing and an edit test on the
    SAE's latents (:class:`LatentEdit`); the factor x latent matrices and top sentences for
    the report (``DIR/evaluation.json``, :mod:`untwine.viz.sae_report`).
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


def fvu(x, x_hat) -> float:
    """Fraction of variance unexplained: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``."""
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(x_hat, dtype=np.float64)
    return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


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
) -> dict[str, Any]:
    """Every applicable metric of ``sae`` (directory or module) on ``acts`` (path or array).

    ``features [F, d_in]``: the true dictionary (MMCS, recovered); ``true_codes [N, F]``
    (dense or scipy sparse, rows aligned with ``acts``): MCC and, with ``hierarchy``
    (``[(parent, [children])]``), absorption; ``factors [N, K]``: the disentanglement suite
    on the codes (``metrics`` selects, as in ``untwine score``).  Returns a flat dict.
    """
    import scipy.sparse as sp

    from untwine.sae.data import open_activations
    from untwine.sae.encode import load_usable_sae
    from untwine.sae.train import resolve_device

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
        from untwine._checks import as_factors

        fac = _nonnegative(as_factors(factors, "factors"))
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

    for a in range(0, N, chunk_rows):
        b = min(N, a + chunk_rows)
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


def _nonnegative(fac: np.ndarray) -> np.ndarray:
    if (fac < 0).any():
        col = int(np.argwhere((fac < 0).any(0))[0][0])
        raise UntwineError(f"factors: factor {col} has negative values; factors must be class indices 0, 1, 2, ...")
    return fac


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
) -> tuple[dict[str, Any], list[str]]:
    """:func:`evaluate_sae` with the ground truth read from files; returns ``(scores, notes)``.

    ``features``: ``.npy`` ``[F, d_in]``.  When ``true_codes`` is not given and the
    features file sits in a directory written by ``untwine sae synthetic`` whose
    ``codes.npz`` has one row per activation row, those codes (and ``synthetic.json``'s
    hierarchy) are used.  ``factors``: any file :func:`untwine.io.read_array` reads.
    """
    from pathlib import Path

    import scipy.sparse as sp

    from untwine.files import read_json
    from untwine.io import read_array
    from untwine.sae.data import open_activations
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
        metrics=metrics, seed=seed, device=device,
    )
    return scores, notes


def _is_sparse_npz(path) -> bool:
    try:
        with np.load(path) as z:
            return "format" in z.files and "indptr" in z.files
    except (OSError, ValueError):
        return False


# -- concepts: the SAE beside the concept baselines (``untwine sae evaluate --factors``) -------------
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
    of ``S_a`` only and keeps what the SAE does not reconstruct.
    """

    def __init__(self, module, codes_train, factors_train, sizes, *, m: int = EDIT_LATENTS) -> None:
        from untwine.lm.probing import correlation_ratio

        self.module = module
        self.latents, self.means = [], []
        for a, size in enumerate(sizes):
            s = np.argsort(-correlation_ratio(codes_train, factors_train[:, a]), kind="stable")[:m]
            onehot = np.eye(size)[factors_train[:, a]]
            sums = onehot.T @ codes_train[:, s]
            self.latents.append(s)
            self.means.append(sums / np.maximum(onehot.sum(0), 1)[:, None])

    def __call__(self, x, factors, a: int, new_values) -> np.ndarray:
        dev = next(self.module.parameters()).device
        xt = torch.as_tensor(np.asarray(x, np.float32), device=dev)
        c = self.module.encode(xt)
        c2 = c.clone()
        c2[:, torch.as_tensor(self.latents[a], device=dev)] = torch.as_tensor(
            self.means[a][np.asarray(new_values)], dtype=c.dtype, device=dev)
        return (xt + self.module.decode(c2) - self.module.decode(c)).double().cpu().numpy()


def lm_context(acts) -> dict[str, Any]:
    """What an ``untwine lm activations`` layer directory's parent knows about its rows:
    ``factor_names`` / ``factor_sizes`` (``activations.json``), ``sentences`` and ``rows``
    (``sentences.txt``, ``rows.npy``); ``{}`` for any other source."""
    from pathlib import Path

    from untwine.files import read_json

    p = Path(str(acts))
    if not (p.is_dir() and (p / "manifest.json").is_file()):
        return {}
    out: dict[str, Any] = {}
    info = p.parent / "activations.json"
    if info.is_file():
        meta = read_json(info, what="activation summary")
        if isinstance(meta, dict) and meta.get("factor_names"):
            out["factor_names"] = [str(n) for n in meta["factor_names"]]
            out["factor_sizes"] = [int(s) for s in meta.get("factor_sizes") or []] or None
    if (p.parent / "sentences.txt").is_file() and (p.parent / "rows.npy").is_file():
        out["sentences"] = (p.parent / "sentences.txt").read_text(encoding="utf-8").splitlines()
        out["rows"] = np.load(p.parent / "rows.npy")
    return out


def evaluate_concepts(sae, acts, factors, *, baselines: bool = True, factor_names=None, factor_sizes=None,
                      sentences=None, rows=None, metrics: str = "all", seed: int = 0, device: str = "auto",
                      top_n: int = 5) -> dict[str, Any]:
    """The SAE's codes beside the concept baselines on the same train / test rows.

    Rows are split by :func:`untwine.lm.baselines.split_rows` (``seed``).  ``sae``: the SAE's
    test FVU, :func:`~untwine.lm.baselines.score_codes` (the suite fitted on the train rows,
    k-sparse probing) and the edit test (:class:`LatentEdit`, judged by the same linear
    probes on raw activations as the supervised dictionary's edit);  ``baselines``:
    :func:`~untwine.lm.baselines.concept_baselines` with as many PCA components as latents.
    ``metrics`` selects the SAE's suite metrics (the baselines get the whole suite).
    ``matrices``: normalised MI (all rows) and DCI importance (train / test) of latents vs
    factors, ``[d_sae, K]``; ``shown``: the :data:`SHOWN_PER_FACTOR` latents of largest
    normalised MI per factor; ``top_sentences``: for those, the ``top_n`` sentences of
    largest code when ``sentences`` (and ``rows``, each activation row's sentence) are given.
    Every row is read into memory (concept corpora are small).
    """
    from untwine._checks import as_factors
    from untwine.lm.baselines import concept_baselines, score_codes, split_rows
    from untwine.lm.edit import edit_test
    from untwine.lm.probing import LinearProbes
    from untwine.sae.data import open_activations
    from untwine.sae.encode import load_usable_sae
    from untwine.sae.train import resolve_device
    from untwine.metrics.matrices import dci_importance, normalized_mi

    module = sae if isinstance(sae, torch.nn.Module) else load_usable_sae(sae, resolve_device(device))
    source = open_activations(acts)
    fac = _nonnegative(as_factors(factors, "factors"))
    if fac.shape[0] != source.rows:
        raise UntwineError(f"factors have {fac.shape[0]} rows but the activations have {source.rows}; give one row of factors per activation row")
    if source.dim != module.d_in:
        raise UntwineError(f"{source.name} has {source.dim} columns but the SAE takes d_in = {module.d_in}")
    K = fac.shape[1]
    names = [str(n) for n in factor_names] if factor_names is not None and len(factor_names) == K else [f"factor {k}" for k in range(K)]
    sizes = [int(s) for s in factor_sizes] if factor_sizes is not None and len(factor_sizes) == K else None
    sizes = [max(int(m) + 1, s) for m, s in zip(fac.max(0), sizes or [0] * K)]
    x = source.read(0, source.rows).astype(np.float64)
    dev = next(module.parameters()).device
    with torch.no_grad():
        pairs = [module.reconstruct(torch.from_numpy(x[a : a + 8192].astype(np.float32)).to(dev)) for a in range(0, len(x), 8192)]
    codes = np.concatenate([c.double().cpu().numpy() for c, _ in pairs])
    x_hat = np.concatenate([h.double().cpu().numpy() for _, h in pairs])
    tr, te = split_rows(len(x), seed)
    test_fvu = fvu(x[te], x_hat[te])
    sae_scores = score_codes(codes[tr], codes[te], fac[tr], fac[te], fvu=test_fvu, factor_names=names, seed=seed,
                             suite=metrics == "all")
    if metrics != "all":
        from untwine.metrics.suite import evaluate_arrays

        sae_scores.update(evaluate_arrays(codes[tr], fac[tr], codes[te], fac[te], metrics=metrics, seed=seed))
    probes = LinearProbes().fit(x[tr], fac[tr], seed=seed)
    edit = LatentEdit(module, codes[tr], fac[tr], sizes)
    sae_scores.update(edit_test(x[te], fac[te], probes, edit, factor_names=names, factor_sizes=sizes, seed=seed))
    base = (concept_baselines(x[tr], fac[tr], x[te], fac[te], num_latents=module.d_sae, factor_names=names,
                              factor_sizes=sizes, seed=seed) if baselines else None)
    nmi = normalized_mi(codes, fac)
    try:
        imp = dci_importance(codes[tr], fac[tr], codes[te], fac[te], seed=seed)
    except UntwineError:
        imp = None  # e.g. every latent dead on these rows
    shown: list[int] = []
    for k in range(K):
        shown += [int(j) for j in np.argsort(-nmi[:, k], kind="stable")[:SHOWN_PER_FACTOR] if nmi[j, k] > 0 and int(j) not in shown]
    tops = {}
    if rows is not None and len(rows) != len(x):
        sentences = None  # rows.npy of another run than these activations: no sentences rather than wrong ones
    if sentences is not None and shown:
        from untwine.lm.top_sentences import top_sentences

        tops = {str(j): [[v, s] for v, s in lst] for j, lst in
                top_sentences(codes, sentences, rows=rows, latents=shown, n=top_n).items()}
    return {
        "factor_names": names, "factor_sizes": sizes, "sae": sae_scores, "baselines": base,
        "edit_latents": [[int(j) for j in s] for s in edit.latents],
        "matrices": {"normalized_mi": nmi.tolist(), "dci_importance": None if imp is None else imp.tolist()},
        "shown": shown, "top_sentences": tops,
        "settings": {"rows": len(x), "train_rows": len(tr), "test_rows": len(te), "seed": int(seed),
                     "d_in": int(module.d_in), "d_sae": int(module.d_sae), "edit_latents_per_factor": EDIT_LATENTS},
    }


def evaluate_concepts_paths(sae_dir, acts, factors, *, factor_key: str | None = None, **kw) -> dict[str, Any]:
    """:func:`evaluate_concepts` with the factors read from a file and, for an ``untwine lm
    activations`` layer directory, the factor names, sentences and rows from its parent (:func:`lm_context`)."""
    from untwine.io import read_array

    fac = read_array(factors, factor_key)
    return evaluate_concepts(sae_dir, acts, fac, **lm_context(acts), **kw)


#: columns of the comparison table: the SAE, then the baselines of :func:`untwine.lm.baselines.concept_baselines`
TABLE_CODES = ("sae", "raw", "pca", "supervised", "supervised_projection")


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
    rows = [[k, *(nan if col.get(k) is None or isinstance(col.get(k), str) else float(col[k]) for col in cols)]
            for k in keys]
    return ["score", "this SAE", *names], rows
