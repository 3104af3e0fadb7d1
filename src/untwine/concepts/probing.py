"""Linear probes for factors, and k-sparse probing of codes.

**Linear probes** (:class:`LinearProbes`): one multinomial logistic regression per factor
(``sklearn.linear_model.LogisticRegression``, L2, ``C = 1``, lbfgs) on features
standardised with the train mean and standard deviation.

**k-sparse probing** (Gurnee et al. 2023, "Finding Neurons in a Haystack: Case Studies
with Sparse Probing"; the SAEBench sparse-probing evaluation, k = 1, 2, 5): for each factor,
keep the ``k`` latents that best separate its values on the train rows and fit a probe on
those ``k`` latents alone; report accuracy on held-out rows.  SAEBench ranks latents by
the difference of class means for binary tasks; for a factor with several values untwine
ranks by the correlation ratio ``eta^2 = sum_v n_v (mean_v - mean)^2 / sum_i (z_i - mean)^2``
(between-value over total variance, 0 for a constant latent), which reduces to the
squared standardised mean difference ranking for two values.
"""

from __future__ import annotations

import warnings

import numpy as np

from untwine._checks import as_codes, as_factors, same_rows
from untwine.errors import UntwineError
from untwine.blas import one_blas_thread

SPARSE_KS = (1, 2, 5)


def _fit_lr(z: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        return None  # a single value: predict it
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(z, y)
    return clf


class LinearProbes:
    """One standardised logistic-regression probe per factor column."""

    def fit(self, x, factors, *, seed: int = 0) -> LinearProbes:
        with one_blas_thread():  # see sparse_probing
            return self._fit(x, factors, seed)

    def _fit(self, x, factors, seed: int) -> LinearProbes:
        a = as_codes(x, "activations")
        f = as_factors(factors, "factors", allow_constant=True)
        same_rows(a, f, "activations", "factors")
        self.mu_, sd = a.mean(0), a.std(0)
        self.sd_ = np.where(sd > 1e-12, sd, 1.0)
        z = (a - self.mu_) / self.sd_
        self.probes_ = []
        for k in range(f.shape[1]):
            clf = _fit_lr(z, f[:, k], seed)
            self.probes_.append(clf if clf is not None else int(f[0, k]))
        return self

    def predict(self, x) -> np.ndarray:
        """Predicted value of every factor, ``[n, K]`` int64."""
        z = (as_codes(x, "activations") - self.mu_) / self.sd_
        with one_blas_thread():
            cols = [
                np.full(z.shape[0], p, dtype=np.int64) if isinstance(p, int) else p.predict(z).astype(np.int64)
                for p in self.probes_
            ]
        return np.stack(cols, axis=1)

    def accuracy(self, x, factors) -> np.ndarray:
        """Accuracy of each factor's probe on rows ``x``, ``[K]``."""
        f = as_factors(factors, "factors", allow_constant=True)
        return (self.predict(x) == f).mean(axis=0)


def correlation_ratio(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``eta^2`` of every column of ``codes`` for integer ``labels`` (module docstring), ``[D]``."""
    return correlation_ratios(codes, np.asarray(labels).reshape(-1, 1))[0]


def correlation_ratios(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``[K, D]``: :func:`correlation_ratio` of every column of ``codes`` for every factor column
    (the total variance, one pass over the codes, shared by all factors).  One BLAS thread: the
    class sums ``[values, rows] @ [rows, D]`` are thin (512 latents, 66,000 rows: 8 CPU-s with
    two spinning threads on a shared machine, 0.7 with one; the same sums)."""
    with one_blas_thread():
        return _correlation_ratios(np.asarray(codes), factors)


def _correlation_ratios(codes: np.ndarray, factors) -> np.ndarray:
    mean = codes.mean(0)
    total = ((codes - mean) ** 2).sum(0)
    defined = total > 1e-12 * max(total.max(), 1e-300)
    out = []
    for labels in np.asarray(factors, dtype=np.int64).T:
        _, inv = np.unique(labels, return_inverse=True)
        onehot = np.eye(inv.max() + 1)[inv]
        counts = onehot.sum(0)
        means = (onehot.T @ codes) / counts[:, None]
        between = (counts[:, None] * (means - mean) ** 2).sum(0)
        out.append(np.where(defined, between / np.where(total > 0, total, 1.0), 0.0))
    return np.array(out).reshape(-1, codes.shape[1])


def sparse_probing(
    codes_train, factors_train, codes_test, factors_test, *, ks=SPARSE_KS, factor_names=None, seed: int = 0
) -> dict[str, float]:
    """Test accuracy of probes on the top-``k`` latents of each factor (module docstring).

    Keys: ``sparse_probe_k{k}_{factor}`` for each ``k`` and factor, and
    ``sparse_probe_k{k}_mean`` (mean over factors).  Runs with one BLAS thread: the products
    are thin (``[rows, k]`` by ``[k]``) and extra threads only spin (512 latents, 66,000 rows:
    11 CPU-s with two threads, 4.5 with one, the same fits).
    """
    with one_blas_thread():
        return _sparse_probing(codes_train, factors_train, codes_test, factors_test, ks, factor_names, seed)


def _sparse_probing(codes_train, factors_train, codes_test, factors_test, ks, factor_names, seed) -> dict[str, float]:
    ctr = as_codes(codes_train, "codes_train")
    cte = as_codes(codes_test, "codes_test")
    ftr = as_factors(factors_train, "factors_train")
    fte = as_factors(factors_test, "factors_test", allow_constant=True)
    same_rows(ctr, ftr, "codes_train", "factors_train")
    same_rows(cte, fte, "codes_test", "factors_test")
    if ctr.shape[1] != cte.shape[1] or ftr.shape[1] != fte.shape[1]:
        raise UntwineError("train and test codes / factors must have the same columns")
    names = list(factor_names) if factor_names is not None else [str(k) for k in range(ftr.shape[1])]
    if len(names) != ftr.shape[1]:
        raise UntwineError(f"factor_names has {len(names)} names but factors have {ftr.shape[1]} columns")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise UntwineError(f"ks must be positive integers, got {ks}")
    out: dict[str, float] = {}
    order = [np.argsort(-eta, kind="stable") for eta in correlation_ratios(ctr, ftr)]
    for k in ks:
        accs = []
        for j, name in enumerate(names):
            top = order[j][: min(k, ctr.shape[1])]
            a, b = ctr[:, top], cte[:, top]
            mu, sd = a.mean(0), a.std(0)
            sd = np.where(sd > 1e-12, sd, 1.0)
            clf = _fit_lr((a - mu) / sd, ftr[:, j], seed)
            acc = float((clf.predict((b - mu) / sd) == fte[:, j]).mean())
            out[f"sparse_probe_k{k}_{name}"] = acc
            accs.append(acc)
        out[f"sparse_probe_k{k}_mean"] = float(np.mean(accs))
    return out


__all__ = ["SPARSE_KS", "LinearProbes", "correlation_ratio", "correlation_ratios", "sparse_probing"]
