"""Active and passive latents, and the metric suite on mean vs sampled representations.

Reference: L. Bonheme and M. Grzes, "Be More Active! Understanding the Differences
between Mean and Sampled Representations of Variational Autoencoders" (JMLR 2023,
arXiv:2109.12679).  disentanglement_lib has no counterpart; its evaluation takes the
*mean* representation (``representation_function = mean``) or a *sampled* one
(``gaussian_encoder_model.sample_from_latent_distribution``), which is what the two
representations below reproduce.

Definitions used here
---------------------
For a Gaussian encoder with posterior ``N(mu_j(x), exp(logvar_j(x)))`` and a standard
normal prior, the KL of latent ``j`` at ``x`` is
``0.5 * (mu^2 + exp(logvar) - logvar - 1)`` nats.  Per latent we report

* ``kl``: its KL to the prior averaged over the data;
* ``mean_variance``: the variance over the data of its posterior mean ``mu_j(x)``;
* ``posterior_variance``: the average of ``exp(logvar_j(x))``;
* ``collapsed_fraction``: the fraction of inputs at which its KL is below the threshold
  (a latent that is collapsed for some inputs only is what the paper calls *mixed*).

A latent is **passive** when it has collapsed to the prior across the data: its average
KL is below ``kl_threshold`` (default ``0.01`` nats, :data:`DEFAULT_KL_THRESHOLD`).
Such a latent carries no information, its sampled value is prior noise, but its mean can
still move a little with the input.  Those small movements are often strongly
correlated between passive latents, which makes the mean representation look
entangled (a high Gaussian total correlation) while the sampled one does not; removing
the passive latents from the mean representation removes the effect.
:func:`compare_representations` computes the metric suite on all three.

Deterministic encoders (``logvars`` is None: AE, QLAE) have no KL; there a latent is
passive when the standard deviation of its code over the data is below
``std_ratio`` (default ``0.05``) times the largest standard deviation of any latent,
the relative form of the FactorVAE score's pruning rule.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from untwine._checks import as_codes, as_factors, same_rows
from untwine.errors import UntwineError

#: average KL (nats) below which a Gaussian latent counts as passive
DEFAULT_KL_THRESHOLD = 0.01
#: how a model's codes are read: the posterior means, or one sample from each posterior
REPRESENTATIONS = ("mean", "sampled")
#: relative std below which a deterministic latent counts as passive
DEFAULT_STD_RATIO = 0.05

#: metrics used by :func:`compare_representations` when none are given
DEFAULT_COMPARISON_METRICS = (
    "mig",
    "dci_disentanglement",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation_norm",
    "mutual_info_score",
)


def gaussian_kl(means, logvars) -> np.ndarray:
    """Per-sample, per-latent KL of ``N(mean, exp(logvar))`` to ``N(0, 1)``, ``[N, D]`` nats."""
    mu = as_codes(means, "means")
    lv = as_codes(logvars, "logvars")
    if lv.shape != mu.shape:
        raise UntwineError(f"logvars has shape {lv.shape} but means has shape {mu.shape}; they must match")
    return 0.5 * (mu**2 + np.exp(lv) - lv - 1.0)


def latent_activity(
    means,
    logvars=None,
    *,
    kl_threshold: float = DEFAULT_KL_THRESHOLD,
    std_ratio: float = DEFAULT_STD_RATIO,
) -> dict:
    """Per-latent activity of a representation.

    Parameters
    ----------
    means: ``[N, D]`` posterior means (or the deterministic codes).
    logvars: ``[N, D]`` posterior log-variances, or None for deterministic encoders.
    kl_threshold: average KL (nats) below which a Gaussian latent is passive.
    std_ratio: for deterministic codes, relative std below which a latent is passive.

    Returns
    -------
    dict with numpy arrays of length ``D``: ``kl`` (None when deterministic),
    ``mean_variance``, ``posterior_variance`` (None when deterministic),
    ``collapsed_fraction`` (None when deterministic), ``active`` (bool); index arrays
    ``active_latents``, ``passive_latents`` and ``order`` (latents from most to least
    active: by KL, or by the variance of the codes when deterministic); and
    ``criterion`` (``"kl"`` or ``"std_ratio"``) and ``threshold``.
    """
    mu = as_codes(means, "means")
    mean_var = mu.var(axis=0)
    if logvars is not None:
        if not (kl_threshold >= 0):
            raise UntwineError(f"kl_threshold must be >= 0, got {kl_threshold}")
        kl_ns = gaussian_kl(mu, logvars)
        kl = kl_ns.mean(axis=0)
        post_var = np.exp(as_codes(logvars, "logvars")).mean(axis=0)
        collapsed = (kl_ns < kl_threshold).mean(axis=0)
        active = kl >= kl_threshold
        score = kl
        criterion, threshold = "kl", float(kl_threshold)
    else:
        if not (0 <= std_ratio < 1):
            raise UntwineError(f"std_ratio must be in [0, 1), got {std_ratio}")
        kl = post_var = collapsed = None
        std = np.sqrt(mean_var)
        top = std.max()
        active = std > std_ratio * top if top > 0 else np.zeros(mu.shape[1], dtype=bool)
        score = mean_var
        criterion, threshold = "std_ratio", float(std_ratio)
    # most active first; ties keep index order
    order = np.argsort(-score, kind="stable")
    return {
        "kl": kl,
        "mean_variance": mean_var,
        "posterior_variance": post_var,
        "collapsed_fraction": collapsed,
        "active": active,
        "active_latents": np.flatnonzero(active),
        "passive_latents": np.flatnonzero(~active),
        "order": order,
        "criterion": criterion,
        "threshold": threshold,
    }


def activity_summary(activity: dict) -> dict[str, float]:
    """Named floats summarising :func:`latent_activity` (for metrics.json-style output)."""
    active = np.asarray(activity["active"], dtype=bool)
    out = {
        "num_latents": float(active.size),
        "num_active_latents": float(active.sum()),
        "num_passive_latents": float((~active).sum()),
    }
    if activity.get("kl") is not None:
        out["total_kl"] = float(np.sum(activity["kl"]))
    return out


def sample_representation(means, logvars, rng: np.random.Generator) -> np.ndarray:
    """One draw ``z = mean + exp(logvar / 2) * eps`` per row, ``[N, D]``."""
    mu = as_codes(means, "means")
    lv = as_codes(logvars, "logvars")
    if lv.shape != mu.shape:
        raise UntwineError(f"logvars has shape {lv.shape} but means has shape {mu.shape}; they must match")
    return mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape)


def _default_scorer(metrics):
    try:
        from untwine.metrics.suite import evaluate_arrays
    except ModuleNotFoundError as exc:  # pragma: no cover - during development only
        raise UntwineError("the metric suite (untwine.metrics.suite) is not available") from exc

    def score(codes_train, factors_train, codes_test, factors_test, seed):
        return evaluate_arrays(codes_train, factors_train, codes_test, factors_test, metrics=metrics, seed=seed)

    return score


def compare_representations(
    means,
    logvars,
    factors,
    *,
    test_means=None,
    test_logvars=None,
    test_factors=None,
    metrics=DEFAULT_COMPARISON_METRICS,
    kl_threshold: float = DEFAULT_KL_THRESHOLD,
    seed: int = 0,
    scorer: Callable | None = None,
) -> dict:
    """The metric suite on the mean, the sampled, and the active-only mean representation.

    ``means``/``logvars``/``factors`` are the train split; the test split (optional, as
    in :func:`untwine.metrics.suite.evaluate_arrays`) is used by the metrics that fit
    on train and report on test.  Which latents are passive is decided on the train
    split (:func:`latent_activity` with ``kl_threshold``) and applied to both.  The
    sampled representation draws one sample per row with ``np.random.default_rng(seed)``.

    ``scorer(codes_train, factors_train, codes_test, factors_test, seed) -> dict`` replaces
    the default, :func:`untwine.metrics.suite.evaluate_arrays` restricted to ``metrics``.

    Returns ``{"activity": latent_activity(...), "mean": {...}, "sampled": {...},
    "mean_active": {...}}``; ``mean_active`` is ``{}`` when no latent is active and is
    the same as ``mean`` when none is passive.
    """
    if logvars is None:
        raise UntwineError("compare_representations needs posterior log-variances (a Gaussian encoder)")
    mu = as_codes(means, "means")
    f = as_factors(factors, "factors")
    same_rows(mu, f, "means", "factors")
    has_test = test_means is not None
    if has_test != (test_factors is not None) or has_test != (test_logvars is not None):
        raise UntwineError("give test_means, test_logvars and test_factors together, or none of them")
    if has_test:
        mu_t = as_codes(test_means, "test_means")
        f_t = as_factors(test_factors, "test_factors", allow_constant=True)
        same_rows(mu_t, f_t, "test_means", "test_factors")
        if mu_t.shape[1] != mu.shape[1]:
            raise UntwineError(f"test_means has {mu_t.shape[1]} latents but means has {mu.shape[1]}")
    else:
        mu_t = f_t = None
    score = scorer if scorer is not None else _default_scorer(tuple(metrics) if metrics else None)

    act = latent_activity(mu, logvars, kl_threshold=kl_threshold)
    rng = np.random.default_rng(seed)
    sampled = sample_representation(mu, logvars, rng)
    sampled_t = sample_representation(mu_t, test_logvars, rng) if has_test else None

    out = {"activity": act}
    out["mean"] = score(mu, f, mu_t, f_t, seed)
    out["sampled"] = score(sampled, f, sampled_t, f_t, seed)
    keep = act["active_latents"]
    if keep.size == 0:
        out["mean_active"] = {}
    elif keep.size == mu.shape[1]:
        out["mean_active"] = dict(out["mean"])
    else:
        out["mean_active"] = score(mu[:, keep], f, mu_t[:, keep] if has_test else None, f_t, seed)
    return out


def comparison_scores(comparison: dict) -> dict[str, float]:
    """Flatten :func:`compare_representations` into one dict of named floats.

    Keys: those of :func:`activity_summary`, then ``mean.<key>``, ``sampled.<key>`` and
    ``mean_active.<key>`` for every metric key computed.
    """
    out = activity_summary(comparison["activity"])
    for rep in ("mean", "sampled", "mean_active"):
        for k, v in comparison.get(rep, {}).items():
            out[f"{rep}.{k}"] = float(v)
    return out
