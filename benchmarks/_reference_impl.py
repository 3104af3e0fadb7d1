"""Straightforward per-pair reference implementations of the array metrics.

Written from the metric definitions to mirror how disentanglement_lib (and the
latent-quantization paper's standalone InfoMEC code) compute them: one
scikit-learn call per (latent, factor) pair or per factor, in Python loops.
They serve ``metrics_speed.py`` as the slow baseline and as a second opinion
on untwine's values.  Arrays are ``[N, D]`` codes and ``[N, K]`` integer
factors (rows are samples).  Not part of the package.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, mutual_info_score, roc_auc_score
from sklearn.svm import LinearSVC


# --- shared helpers ------------------------------------------------------------------------
def histogram_bins(x: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Column-wise equal-width binning: bin index of each value among ``num_bins`` bins."""
    out = np.zeros(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        col = x[:, j]
        edges = np.histogram(col, bins=num_bins)[1]
        # left edges only: values equal to the max fall into the last bin
        out[:, j] = np.digitize(col, edges[:-1])
    return out


def mi_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """I(a_i; b_j) in nats for every column pair, one sklearn call each."""
    m = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            m[i, j] = mutual_info_score(b[:, j], a[:, i])
    return m


def entropies(y: np.ndarray) -> np.ndarray:
    return np.array([mutual_info_score(y[:, k], y[:, k]) for k in range(y.shape[1])])


# --- MIG -----------------------------------------------------------------------------------
def ref_mig(codes, factors, num_bins: int = 20) -> dict:
    m = mi_matrix(histogram_bins(codes, num_bins), factors)  # [D, K]
    h = entropies(factors)
    top = np.sort(m, axis=0)
    return {"mig": float(np.mean((top[-1] - top[-2]) / h))}


# --- SAP -----------------------------------------------------------------------------------
def ref_sap(codes_tr, factors_tr, codes_te, factors_te) -> dict:
    d, k = codes_tr.shape[1], factors_tr.shape[1]
    s = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            clf = LinearSVC(C=0.01, class_weight="balanced")
            clf.fit(codes_tr[:, i : i + 1], factors_tr[:, j])
            s[i, j] = np.mean(clf.predict(codes_te[:, i : i + 1]) == factors_te[:, j])
    top = np.sort(s, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2]))}


# --- DCI -----------------------------------------------------------------------------------
def _one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:
    # columns of p are distributions (unnormalised); same 1e-11 smoothing as the reference
    return 1.0 - scipy.stats.entropy(p + 1e-11, base=base)


def dci_from_importance(r: np.ndarray) -> tuple[float, float]:
    d, k = r.shape
    per_code = _one_minus_entropy(r.T, k)
    per_factor = _one_minus_entropy(r, d)
    w = r if r.sum() > 0 else np.ones_like(r)
    return (
        float(np.sum(per_code * w.sum(axis=1) / w.sum())),
        float(np.sum(per_factor * w.sum(axis=0) / w.sum())),
    )


def ref_dci(codes_tr, factors_tr, codes_te, factors_te, seed: int = 0) -> dict:
    d, k = codes_tr.shape[1], factors_tr.shape[1]
    r = np.zeros((d, k))
    acc_tr, acc_te = [], []
    for j in range(k):
        model = GradientBoostingClassifier(random_state=seed)
        model.fit(codes_tr, factors_tr[:, j])
        r[:, j] = np.abs(model.feature_importances_)
        acc_tr.append(np.mean(model.predict(codes_tr) == factors_tr[:, j]))
        acc_te.append(np.mean(model.predict(codes_te) == factors_te[:, j]))
    dis, com = dci_from_importance(r)
    return {
        "dci_disentanglement": dis,
        "dci_completeness": com,
        "dci_informativeness_train": float(np.mean(acc_tr)),
        "dci_informativeness_test": float(np.mean(acc_te)),
    }


# --- Modularity and Explicitness ----------------------------------------------------------
def ref_modularity(codes, factors, num_bins: int = 20) -> dict:
    m2 = np.square(mi_matrix(histogram_bins(codes, num_bins), factors))
    top = m2.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (m2.sum(axis=1) - top) / (top * (m2.shape[1] - 1.0))
    score = 1.0 - delta
    score[top == 0.0] = 0.0
    return {"modularity": float(np.mean(score))}


def ref_explicitness(codes_tr, factors_tr, codes_te, factors_te) -> dict:
    mean, std = codes_tr.mean(axis=0), codes_tr.std(axis=0)
    xtr, xte = (codes_tr - mean) / std, (codes_te - mean) / std
    auc_tr, auc_te = [], []
    for j in range(factors_tr.shape[1]):
        clf = LogisticRegression().fit(xtr, factors_tr[:, j])
        onehot_tr = (factors_tr[:, j][:, None] == clf.classes_[None, :]).astype(int)
        onehot_te = (factors_te[:, j][:, None] == clf.classes_[None, :]).astype(int)
        auc_tr.append(roc_auc_score(onehot_tr, clf.predict_proba(xtr)))
        auc_te.append(roc_auc_score(onehot_te, clf.predict_proba(xte)))
    return {"explicitness_train": float(np.mean(auc_tr)), "explicitness_test": float(np.mean(auc_te))}


# --- IRS -----------------------------------------------------------------------------------
def ref_irs(codes, factors, quantile: float = 0.99, factor_bins: int = 20) -> dict:
    g = histogram_bins(factors.astype(np.float64), factor_bins)
    z = codes[:, codes.var(axis=0) > 0.0]
    if z.shape[1] == 0:
        return {"irs": 0.0}
    max_dev = np.max(np.abs(z - z.mean(axis=0)), axis=0)
    cum = np.zeros((z.shape[1], g.shape[1]))
    for k in range(g.shape[1]):
        values = np.unique(g[:, k])
        for v in values:
            rows = z[g[:, k] == v]
            dev = np.abs(rows - rows.mean(axis=0))
            cum[:, k] += np.percentile(dev, quantile * 100, axis=0)
        cum[:, k] /= len(values)
    irs_matrix = 1.0 - cum / max_dev[:, None]
    per_latent = irs_matrix.max(axis=1)
    score = np.average(per_latent, weights=max_dev) if max_dev.sum() > 0 else per_latent.mean()
    return {"irs": float(score)}


# --- unsupervised --------------------------------------------------------------------------
def ref_unsupervised(codes, num_bins: int = 20) -> dict:
    cov = np.cov(codes.T)
    d = cov.shape[0]
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    root = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    wc = 2.0 * np.trace(cov) - 2.0 * np.trace(root)
    disc = histogram_bins(codes, num_bins)
    m = mi_matrix(disc, disc)
    np.fill_diagonal(m, 0.0)
    return {
        "gaussian_total_correlation": float(tc),
        "gaussian_wasserstein_correlation": float(np.real(wc)),
        "gaussian_wasserstein_correlation_norm": float(np.real(wc) / np.trace(cov)),
        "mutual_info_score": float(m.sum() / (d * d - d)),
    }


# --- InfoMEC -------------------------------------------------------------------------------
def _relabel(y: np.ndarray) -> np.ndarray:
    return np.unique(y, return_inverse=True)[1].reshape(-1)


def _unregularised_logloss(x: np.ndarray, y: np.ndarray) -> float:
    model = LogisticRegression(C=np.inf, class_weight="balanced", solver="lbfgs", max_iter=100, tol=1e-4)
    model.fit(x, y)
    return float(log_loss(y, model.predict_proba(x)))


def ref_infomec(codes, factors, seed: int = 0, n_neighbors: int = 10, active_fraction: float = 1 / 20) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    k, d = factors.shape[1], codes.shape[1]
    y = np.stack([_relabel(factors[:, j]) for j in range(k)], axis=1)
    std = codes.std(axis=0)
    z = (codes - codes.mean(axis=0)) / np.where(std > 0, std, 1.0)
    nmi = np.zeros((k, d))
    for i in range(k):
        h = mutual_info_score(y[:, i], y[:, i])
        for j in range(d):
            nmi[i, j] = mutual_info_classif(
                z[:, j : j + 1], y[:, i], discrete_features=False, n_neighbors=n_neighbors, random_state=seed
            )[0] / h
    ranges = codes.max(axis=0) - codes.min(axis=0)
    active = ranges > ranges.max() * active_fraction
    p = nmi[:, active]
    n_active = int(active.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        per_latent = p.max(axis=0) / p.sum(axis=0)
        per_factor = p.max(axis=1) / p.sum(axis=1)
    per_latent = np.where(np.isfinite(per_latent), per_latent, 1.0 / k)  # no information: chance level
    per_factor = np.where(np.isfinite(per_factor), per_factor, 1.0 / max(n_active, 1))
    infom = (per_latent.mean() - 1.0 / k) / (1.0 - 1.0 / k)
    infoc = (per_factor.mean() - 1.0 / n_active) / (1.0 - 1.0 / n_active) if n_active > 1 else float("nan")

    infoe = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i in range(k):
            h_pred = _unregularised_logloss(z, y[:, i])
            h_null = _unregularised_logloss(np.zeros_like(z), y[:, i])
            infoe.append((h_null - h_pred) / h_null)
    return {"infom": float(infom), "infoe": float(np.mean(infoe)), "infoc": float(infoc)}


#: the reference suite in untwine's metric order: name -> (function, uses test split)
REFERENCE_METRICS = {
    "mig": (ref_mig, False),
    "sap": (ref_sap, True),
    "dci": (ref_dci, True),
    "modularity": (ref_modularity, False),
    "explicitness": (ref_explicitness, True),
    "irs": (ref_irs, False),
    "unsupervised": (ref_unsupervised, False),
    "infomec": (ref_infomec, False),
}


def run_reference(name, codes_tr, factors_tr, codes_te, factors_te, seed: int = 0) -> dict:
    fn, uses_test = REFERENCE_METRICS[name]
    if name == "unsupervised":
        return fn(codes_tr)
    if name in ("dci", "infomec"):
        return fn(codes_tr, factors_tr, codes_te, factors_te, seed=seed) if uses_test else fn(codes_tr, factors_tr, seed=seed)
    return fn(codes_tr, factors_tr, codes_te, factors_te) if uses_test else fn(codes_tr, factors_tr)
