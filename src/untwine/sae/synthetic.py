"""Synthetic activations with a known dictionary: the ground truth SAEs are scored against.

``x = sum_i c_i d_i + b + noise`` with ``F`` unit-norm true features ``d_i`` in ``dim``
dimensions (``F > dim``: superposition) and sparse non-negative codes ``c``:

* firing: feature ``i`` fires with probability ``p_i`` proportional to
  ``(i + 1) ** -freq_power`` (power law; ``freq_power=0``: all equal), scaled so that
  ``sum_i p_i = active`` (the mean number of active features per row), capped at 1;
* magnitudes: ``mag_mean + mag_std * N(0, 1)`` when active, clipped at ``0.05``;
* correlations: with ``correlation = rho > 0`` features fall into ``corr_groups`` random
  groups; firing is decided by a Gaussian copula whose latent variables correlate by
  ``rho`` within a group, which keeps every ``p_i`` exact;
* hierarchy: ``hierarchy = P`` parents (chosen among the most frequent features) with
  ``children`` children each (chosen among the rest); a child fires only when its parent
  does - exactly one child, chosen uniformly, with probability ``child_fire`` - the setting
  where a sparse code "absorbs" the parent into the child (Chanin et al. 2024).

Returns a :class:`SyntheticActivations` with the activations ``[N, dim]`` (float32), the
true dictionary ``[F, dim]`` and the true codes as a ``scipy.sparse`` CSR matrix
``[N, F]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri

from untwine._checks import check_seed
from untwine.errors import UntwineError


@dataclass
class SyntheticActivations:
    acts: np.ndarray  # [N, dim] float32
    dictionary: np.ndarray  # [F, dim] float32, unit rows
    codes: sp.csr_matrix  # [N, F] float32
    probabilities: np.ndarray  # [F] firing probabilities (marginal)
    hierarchy: list[tuple[int, list[int]]] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def factors(self, n: int = 8) -> np.ndarray:
        """``[N, n]`` int: whether each of the ``n`` most frequent features fires (0/1)."""
        order = np.argsort(-self.probabilities, kind="stable")[:n]
        return (self.codes[:, order].toarray() > 0).astype(np.int64)


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check(name, value, ok, what):
    if not ok:
        raise UntwineError(f"{name} must be {what}, got {value}")


def make_synthetic(
    features: int = 256,
    dim: int = 64,
    samples: int = 100_000,
    *,
    active: float = 4.0,
    freq_power: float = 0.5,
    mag_mean: float = 1.0,
    mag_std: float = 0.25,
    correlation: float = 0.0,
    corr_groups: int = 16,
    hierarchy: int = 0,
    children: int = 3,
    child_fire: float = 0.8,
    noise: float = 0.0,
    bias: float = 0.0,
    seed: int = 0,
    chunk: int = 65536,
) -> SyntheticActivations:
    """Generate activations with a known dictionary (see the module docstring)."""
    for name, v in (("features", features), ("dim", dim), ("samples", samples), ("children", children),
                    ("corr_groups", corr_groups)):
        _check(name, v, _finite(v) and int(v) == v and v >= 1, "a positive integer")
    _check("hierarchy", hierarchy, _finite(hierarchy) and int(hierarchy) == hierarchy, "an integer")
    check_seed(seed, "seed")
    _check("active", active, _finite(active) and 0 < active <= features, f"in (0, features={features}]")
    _check("correlation", correlation, _finite(correlation) and 0 <= correlation < 1, "in [0, 1)")
    _check("child_fire", child_fire, _finite(child_fire) and 0 <= child_fire <= 1, "in [0, 1]")
    _check("mag_mean", mag_mean, _finite(mag_mean) and mag_mean > 0, "a finite number > 0")
    for name, v in (("freq_power", freq_power), ("mag_std", mag_std), ("noise", noise), ("bias", bias)):
        _check(name, v, _finite(v) and v >= 0, "a finite number >= 0")
    _check("hierarchy", hierarchy, hierarchy >= 0 and hierarchy * (1 + children) <= features, f"such that hierarchy * (1 + children) <= features ({features})")
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((features, dim))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    b = rng.standard_normal(dim) * bias

    # hierarchy: parents among the most frequent indices, children after them
    parents = list(range(hierarchy))
    kids_all = list(range(hierarchy, hierarchy + hierarchy * children))
    tree = [(p, kids_all[j * children : (j + 1) * children]) for j, p in enumerate(parents)]
    is_child = np.zeros(features, bool)
    is_child[kids_all] = True
    free = ~is_child

    w = (np.arange(features) + 1.0) ** (-float(freq_power))
    # children's marginal: parent prob * child_fire / children; scale the free features to reach `active`
    p = np.zeros(features)
    expected_children = 0.0
    lo, hi = 0.0, 1e6
    for _ in range(100):
        c = (lo + hi) / 2
        p_free = np.minimum(1.0, c * w)
        exp_kids = sum(p_free[par] * child_fire for par, _ in tree)
        total = p_free[free].sum() + exp_kids
        if total > active:
            hi = c
        else:
            lo = c
    p[free] = np.minimum(1.0, lo * w)[free]
    for par, kids in tree:
        for kid in kids:
            p[kid] = p[par] * child_fire / children
    expected_children = sum(p[k] for _, ks in tree for k in ks)
    del expected_children

    group = rng.integers(0, max(1, corr_groups), size=features)
    thresholds = ndtri(np.clip(p, 1e-12, 1 - 1e-12))
    rows, cols, vals = [], [], []
    for a in range(0, samples, chunk):
        n = min(chunk, samples - a)
        e = rng.standard_normal((n, features))
        if correlation > 0:
            g = rng.standard_normal((n, max(1, corr_groups)))
            e = np.sqrt(1 - correlation) * e + np.sqrt(correlation) * g[:, group]
        fire = e < thresholds
        fire[:, is_child] = False
        if tree:
            u = rng.random((n, len(tree)))
            pick = rng.integers(0, children, size=(n, len(tree)))
            for j, (par, kids) in enumerate(tree):
                on = fire[:, par] & (u[:, j] < child_fire)
                kid_idx = np.asarray(kids)[pick[:, j]]
                fire[np.nonzero(on)[0], kid_idx[on]] = True
        r, c = np.nonzero(fire)
        m = np.maximum(0.05, mag_mean + mag_std * rng.standard_normal(len(r)))
        rows.append(r + a)
        cols.append(c)
        vals.append(m)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    v = np.concatenate(vals).astype(np.float32)
    codes = sp.csr_matrix((v, (r, c)), shape=(samples, features), dtype=np.float32)
    X = (codes @ D.astype(np.float32)).astype(np.float32) if samples else np.zeros((0, dim), np.float32)
    X = np.asarray(X, dtype=np.float32) + b.astype(np.float32)
    if noise > 0:
        X += (noise * rng.standard_normal(X.shape)).astype(np.float32)
    params = {
        "features": features, "dim": dim, "samples": samples, "active": active, "freq_power": freq_power,
        "mag_mean": mag_mean, "mag_std": mag_std, "correlation": correlation, "corr_groups": corr_groups,
        "hierarchy": hierarchy, "children": children, "child_fire": child_fire, "noise": noise, "bias": bias,
        "seed": seed,
    }
    return SyntheticActivations(X, D.astype(np.float32), codes, p, tree, params)


#: files of a synthetic directory
ACTS_FILE, FEATURES_FILE, CODES_FILE, FACTORS_FILE, META_FILE = (
    "acts.npy", "features.npy", "codes.npz", "factors.npy", "synthetic.json",
)


def write_synthetic(out, data: SyntheticActivations, *, factors: int = 8) -> dict[str, str]:
    """Write ``data`` to directory ``out`` atomically; returns {what: path}.

    ``acts.npy`` [N, dim] float32, ``features.npy`` [F, dim] (the true dictionary),
    ``codes.npz`` (scipy sparse [N, F], the true codes), ``factors.npy`` [N, n] (whether
    each of the ``factors`` most frequent features fires: integer factors for
    ``untwine sae evaluate --factors``) and ``synthetic.json`` (parameters, firing
    probabilities, hierarchy).
    """
    import io
    from pathlib import Path

    from untwine.files import atomic_write_bytes, write_json

    out = _check_out(Path(out))

    def npy_bytes(a) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    buf = io.BytesIO()
    sp.save_npz(buf, data.codes)
    paths = {
        "acts": out / ACTS_FILE,
        "features": out / FEATURES_FILE,
        "codes": out / CODES_FILE,
        "factors": out / FACTORS_FILE,
        "meta": out / META_FILE,
    }
    atomic_write_bytes(paths["acts"], npy_bytes(data.acts))
    atomic_write_bytes(paths["features"], npy_bytes(data.dictionary))
    atomic_write_bytes(paths["codes"], buf.getvalue())
    atomic_write_bytes(paths["factors"], npy_bytes(data.factors(min(factors, data.dictionary.shape[0]))))
    write_json(
        paths["meta"],
        {
            "params": data.params,
            "probabilities": data.probabilities.tolist(),
            "hierarchy": [[int(p), [int(k) for k in kids]] for p, kids in data.hierarchy],
            "mean_active": float(data.codes.nnz / max(1, data.codes.shape[0])),
        },
    )
    return {k: str(v) for k, v in paths.items()}


def _check_out(out):
    """``out`` unless it is a file or a folder holding files other than a synthetic set's."""
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UntwineError(f"--out {out} exists and is not a directory")
    ours = (ACTS_FILE, FEATURES_FILE, CODES_FILE, FACTORS_FILE, META_FILE)
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in ours) if out.is_dir() else []
    if foreign:
        raise UntwineError(f"--out {out} holds other files ({', '.join(foreign[:3])}); choose an empty or new folder")
    return out


def synthetic_to_dir(out, **params) -> tuple[dict[str, str], dict]:
    """:func:`make_synthetic` then :func:`write_synthetic`; returns ``(paths, summary)``."""
    _check_out(out)
    data = make_synthetic(**params)
    paths = write_synthetic(out, data)
    summary = {
        "rows": int(data.acts.shape[0]),
        "dim": int(data.acts.shape[1]),
        "features": int(data.dictionary.shape[0]),
        "mean_active": float(data.codes.nnz / max(1, data.codes.shape[0])),
    }
    return paths, summary
