"""Evaluating a trained run: the whole metric suite on its dataset (``untwine evaluate``).

Following disentanglement_lib's practice, a *train* sample of ``num_train``
(10000) and a *test* sample of ``num_test`` (5000) factor combinations are
drawn afresh from the run's dataset with ``numpy.random.default_rng(seed)``
(train first, then test), rendered and encoded.  On these codes:

* the array metrics of :func:`untwine.metrics.suite.evaluate_arrays` (MIG, SAP,
  DCI, Modularity, Explicitness, IRS, unsupervised, InfoMEC) - the keys of
  ``untwine score``;
* the interventional BetaVAE and FactorVAE scores
  (:func:`~untwine.metrics.beta_vae.beta_vae_score`,
  :func:`~untwine.metrics.factor_vae.factor_vae_score`, dlib defaults: batch 64,
  10000 train / 5000 eval points; ``interventional_train``/``_eval``/``_batch``
  reduce them), sharing one code cache;
* ``reconstruction``: the mean per-image reconstruction loss on the test sample
  under the model's likelihood (summed Bernoulli cross-entropy for binary data,
  summed squared error otherwise - disentanglement_lib's ``reconstruction_loss``),
  decoding the chosen representation; ``reconstruction_mse`` is the per-pixel
  mean squared error.

``representation="mean"`` uses the posterior mean (``model.encode``);
``"sampled"`` draws ``mean + exp(logvar / 2) * eps`` with a generator seeded by
``seed`` (deterministic encoders are unaffected).  Scores go to
``RUN_DIR/metrics.json`` (one flat object, NaN as null) and the settings to
``RUN_DIR/evaluation.json``.

Active and passive latents ("Be More Active!", Bonheme & Grzes, JMLR 2023; see
:mod:`untwine.metrics.activity`): the posterior ``(mean, logvar)``
(``model.encode_dist``) of the train sample gives every latent's average KL to the
prior and the variance of its means; a latent is passive when its average KL is
below ``kl_threshold`` (0.01 nats), or, for deterministic encoders (AE, QLAE), when
its code's std is below 5% of the largest.  ``num_active_latents`` and
``num_passive_latents`` join the scores; the per-latent table and the lists go to
``evaluation.json`` under ``"activity"``.  With ``compare_representations`` the
``compare_metrics`` (default ``mig,modularity,unsupervised``) are also computed on
the mean representation, a sampled one (one draw per row from
``numpy.random.default_rng(seed)``) and the mean one restricted to the active
latents, stored as ``mean.<key>``, ``sampled.<key>`` and ``mean_active.<key>``
(NaN when no latent is active).  Passive latents make the mean representation look
more correlated (e.g. a higher ``gaussian_total_correlation``) than the sampled
one; ``mean_active`` shows what is left without them.  For deterministic encoders
the sampled representation *is* the mean one (``evaluation.json`` says so).  The
main keys (those of ``untwine score``, on ``representation``) are unchanged.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.train.checkpoint import atomic_write_text
from untwine.train.run import METRICS_FILE, Run, dataset_info, open_run, resolve_device

INTERVENTIONAL = ("beta_vae", "factor_vae")
EXTRA = INTERVENTIONAL + ("reconstruction",)
REPRESENTATIONS = ("mean", "sampled")
EVALUATION_FILE = "evaluation.json"
#: array metrics of the mean / sampled / active-only comparison when none are given (cheap ones)
DEFAULT_COMPARE_METRICS = ("mig", "modularity", "unsupervised")
#: the three representations of the comparison, as key prefixes
COMPARED = ("mean", "sampled", "mean_active")


def parse_evaluation_metrics(spec: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """Split a ``--metrics`` spec into (array metric names, extra names from :data:`EXTRA`)."""
    from untwine.metrics.suite import ARRAY_METRICS, parse_metric_names

    parts = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
    names = [p.strip().lower().replace("-", "_") for p in parts if p.strip()]
    if not names:
        raise UntwineError(f"no metric given; choose 'all' or some of: {', '.join((*ARRAY_METRICS, *EXTRA))}")
    if "all" in names:
        return list(ARRAY_METRICS), list(EXTRA)
    alias = {"beta_vae_score": "beta_vae", "betavae": "beta_vae", "factor_vae_score": "factor_vae", "factorvae": "factor_vae"}
    names = [alias.get(n, n) for n in names]
    extra = [n for n in EXTRA if n in names]
    rest = [n for n in names if n not in EXTRA]
    unknown = [n for n in rest if n not in ARRAY_METRICS]
    if unknown:
        raise UntwineError(
            f"unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}; "
            f"valid: all, {', '.join((*ARRAY_METRICS, *EXTRA))}"
        )
    return (parse_metric_names(rest) if rest else []), extra


class RepresentationEncoder:
    """Callable ``x -> codes`` (numpy float64 ``[n, D]``) of a model's chosen representation."""

    def __init__(self, model, representation: str = "mean", seed: int = 0, device="cpu") -> None:
        if representation not in REPRESENTATIONS:
            raise UntwineError(f"representation must be one of {', '.join(REPRESENTATIONS)}, got {representation!r}")
        self.model, self.representation = model, representation
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(int(seed))

    def torch_codes(self, x: torch.Tensor) -> torch.Tensor:
        return self.torch_codes_and_posterior(x)[0]

    def torch_codes_and_posterior(self, x: torch.Tensor):
        """``(codes, (mean, logvar))`` of batch ``x``; the posterior is None when not computed."""
        x = x.to(self.device).float()
        with torch.no_grad():
            if self.representation == "mean" and not self._mean_is_encode_dist():
                return self.model.encode(x), None
            mean, logvar = self.model.encode_dist(x)
            return self.from_posterior(mean, logvar), (mean, logvar)

    def from_posterior(self, mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """The chosen representation given the posterior (draws from this encoder's generator)."""
        if self.representation == "mean" or logvar is None:
            return mean
        eps = torch.randn(mean.shape, generator=self.gen).to(mean.device, mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    def _mean_is_encode_dist(self) -> bool:
        # the base class defines encode(x) as encode_dist(x)[0]; a model overriding it is asked directly
        from untwine.models.base import DisentanglingModel

        enc = getattr(type(self.model), "encode", None)
        return isinstance(self.model, DisentanglingModel) and enc is DisentanglingModel.encode

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.torch_codes(x).detach().cpu().double().numpy()


def _render(dataset, factors: np.ndarray) -> torch.Tensor:
    x = dataset.observations(factors)
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x.float()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def encode_sample(
    model,
    dataset,
    factors: np.ndarray,
    encoder: RepresentationEncoder,
    *,
    batch: int = 500,
    reconstruct: bool = False,
    posterior: list | None = None,
) -> tuple[np.ndarray, dict[str, float] | None]:
    """Codes of ``factors``' observations and, with ``reconstruct``, the reconstruction errors.

    With a list ``posterior``, the posterior ``mean`` and ``logvar`` (``[N, D]`` numpy,
    ``logvar`` None for deterministic encoders) are appended to it, from the same
    encoder pass when the representation allows.
    """
    codes, loss_sum, se_sum, n_pix = [], 0.0, 0.0, 0
    means: list[np.ndarray] = []
    logvars: list[np.ndarray] | None = []
    for s in range(0, factors.shape[0], batch):
        x = _render(dataset, factors[s:s + batch])
        if posterior is None:
            z = encoder.torch_codes(x)
        else:
            z, post = encoder.torch_codes_and_posterior(x)
            if post is None:
                with torch.no_grad():
                    post = model.encode_dist(x.to(encoder.device).float())
            means.append(_np(post[0]))
            if post[1] is None:
                logvars = None
            elif logvars is not None:
                logvars.append(_np(post[1]))
        codes.append(z.detach().cpu().double().numpy())
        if reconstruct:
            with torch.no_grad():
                xd = x.to(z.device)
                p = model.decode(z).reshape(xd.shape).double()
                xd = xd.double()
                if dataset.binary:
                    pc = p.clamp(1e-7, 1 - 1e-7)
                    per = -(xd * torch.log(pc) + (1 - xd) * torch.log1p(-pc))
                else:
                    per = (p - xd) ** 2
                loss_sum += float(per.reshape(per.shape[0], -1).sum(1).sum())
                se_sum += float(((p - xd) ** 2).sum())
                n_pix += xd.numel()
    out = np.concatenate(codes, axis=0)
    rec = None
    if reconstruct:
        n = factors.shape[0]
        rec = {"reconstruction": loss_sum / n, "reconstruction_mse": se_sum / max(n_pix, 1)}
    if posterior is not None:
        posterior.append(np.concatenate(means, axis=0))
        posterior.append(np.concatenate(logvars, axis=0) if logvars else None)
    return out, rec


def _nan_safe(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def activity_table(activity: dict) -> dict[str, Any]:
    """JSON-ready form of :func:`untwine.metrics.activity.latent_activity` (for evaluation.json)."""
    from untwine.metrics.activity import activity_summary

    active = np.asarray(activity["active"], dtype=bool)
    latents = []
    for j in range(active.size):
        row: dict[str, Any] = {"index": j}
        for key in ("kl", "mean_variance", "posterior_variance", "collapsed_fraction"):
            arr = activity.get(key)
            row[key] = None if arr is None else _nan_safe(arr[j])
        row["active"] = bool(active[j])
        latents.append(row)
    summary = activity_summary(activity)
    return {
        "criterion": activity["criterion"],
        "threshold": float(activity["threshold"]),
        "deterministic": activity.get("kl") is None,
        "num_latents": int(active.size),
        "total_kl": summary.get("total_kl"),
        "active_latents": [int(j) for j in activity["active_latents"]],
        "passive_latents": [int(j) for j in activity["passive_latents"]],
        "order": [int(j) for j in activity["order"]],
        "latents": latents,
    }


def compare_on_posterior(
    mean_train: np.ndarray,
    logvar_train: np.ndarray | None,
    f_train: np.ndarray,
    mean_test: np.ndarray,
    logvar_test: np.ndarray | None,
    f_test: np.ndarray,
    *,
    metrics: Sequence[str],
    activity: dict,
    seed: int = 0,
    dci_estimator: str = "fast",
) -> dict[str, float]:
    """``mean.<key>``, ``sampled.<key>``, ``mean_active.<key>`` scores of the array ``metrics``.

    Gaussian encoders go through :func:`untwine.metrics.activity.compare_representations`
    (with the passive latents of ``activity``'s threshold); for deterministic ones
    (``logvar_train`` None) the sampled representation is the mean one.  When no latent
    is active the ``mean_active`` keys are NaN.
    """
    from untwine.metrics.activity import compare_representations
    from untwine.metrics.suite import evaluate_arrays

    def scorer(c_tr, f_tr, c_te, f_te, sd):
        return evaluate_arrays(c_tr, f_tr, c_te, f_te, metrics=list(metrics), seed=int(sd), dci_estimator=dci_estimator)

    if logvar_train is not None:
        kl_threshold = activity["threshold"] if activity.get("criterion") == "kl" else 0.01
        comp = compare_representations(
            mean_train, logvar_train, f_train,
            test_means=mean_test, test_logvars=logvar_test, test_factors=f_test,
            metrics=list(metrics), kl_threshold=kl_threshold, seed=int(seed), scorer=scorer,
        )
    else:
        mean_scores = scorer(mean_train, f_train, mean_test, f_test, seed)
        keep = np.asarray(activity["active_latents"])
        if keep.size == 0:
            active_scores = {}
        elif keep.size == mean_train.shape[1]:
            active_scores = dict(mean_scores)
        else:
            active_scores = scorer(mean_train[:, keep], f_train, mean_test[:, keep], f_test, seed)
        comp = {"mean": mean_scores, "sampled": dict(mean_scores), "mean_active": active_scores}
    if not comp["mean_active"]:
        comp["mean_active"] = {k: float("nan") for k in comp["mean"]}
    return {f"{rep}.{k}": float(v) for rep in COMPARED for k, v in comp[rep].items()}


def _check_dataset(run: Run, dataset) -> None:
    want = run.info or {}
    have = dataset_info(dataset)
    for key in ("observation_shape", "factor_sizes"):
        if want.get(key) is not None and list(want[key]) != list(have[key]):
            raise UntwineError(
                f"dataset {have['name']!r} does not match the run's ({key} {tuple(have[key])} vs {tuple(want[key])})"
            )


def evaluate_run(
    run_dir,
    *,
    metrics: str | Sequence[str] = "all",
    representation: str = "mean",
    num_train: int = 10000,
    num_test: int = 5000,
    seed: int = 0,
    device: str = "auto",
    interventional_train: int = 10000,
    interventional_eval: int = 5000,
    interventional_batch: int = 64,
    dci_estimator: str = "fast",
    compare_representations: bool = False,
    compare_metrics: str | Sequence[str] = DEFAULT_COMPARE_METRICS,
    kl_threshold: float | None = None,
    dataset=None,
    write: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Evaluate the run in ``run_dir`` (see the module docstring); returns the flat scores.

    ``compare_representations`` adds the ``compare_metrics`` (array metrics of the suite)
    on the mean, sampled and active-only mean representations; ``kl_threshold`` (default
    :data:`untwine.metrics.activity.DEFAULT_KL_THRESHOLD`) decides which latents are passive.
    """
    from untwine.metrics.activity import DEFAULT_KL_THRESHOLD, latent_activity
    from untwine.metrics.suite import evaluate_arrays, parse_metric_names

    for name, v, low in (
        ("num_train", num_train, 2),
        ("num_test", num_test, 1),
        ("interventional_train", interventional_train, 2),
        ("interventional_eval", interventional_eval, 1),
        ("interventional_batch", interventional_batch, 2),
    ):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise UntwineError(f"{name.replace('_', '-')} must be an integer >= {low}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UntwineError(f"seed must be a non-negative integer, got {seed!r}")
    if representation not in REPRESENTATIONS:
        raise UntwineError(f"representation must be one of {', '.join(REPRESENTATIONS)}, got {representation!r}")
    array_names, extra = parse_evaluation_metrics(metrics)
    compare_names = parse_metric_names(compare_metrics) if compare_representations else []
    if kl_threshold is None:
        kl_threshold = DEFAULT_KL_THRESHOLD
    if isinstance(kl_threshold, bool) or not isinstance(kl_threshold, (int, float, np.floating, np.integer)) or not (
        0 <= float(kl_threshold) < math.inf
    ):
        raise UntwineError(f"kl-threshold must be a number >= 0, got {kl_threshold!r}")
    say = progress or (lambda msg: None)

    run = open_run(run_dir)
    if run.checkpoint is None:
        raise UntwineError(f"{run.path}: run has no checkpoint yet (train it first, or resume it)")
    if dataset is None:
        from untwine import data

        dataset = data.load(run.config.dataset)
    _check_dataset(run, dataset)
    skipped: list[str] = []
    asked_all = "all" in [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    if asked_all and not getattr(dataset, "is_full_grid", False):
        # the interventional scores need a full factor grid; "all" means all that apply
        skipped = [m for m in extra if m in INTERVENTIONAL]
        extra = [m for m in extra if m not in INTERVENTIONAL]
    dev = resolve_device(device)
    model = run.load_model(dev)
    encoder = RepresentationEncoder(model, representation, seed=seed, device=dev)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rng = np.random.default_rng(int(seed))
    f_train = dataset.sample_factors(int(num_train), rng)
    f_test = dataset.sample_factors(int(num_test), rng)
    say(f"encoding {num_train} train + {num_test} test samples")
    post_train: list = []
    post_test: list | None = [] if compare_names else None
    c_train, _ = encode_sample(model, dataset, f_train, encoder, posterior=post_train)
    c_test, rec = encode_sample(model, dataset, f_test, encoder, reconstruct="reconstruction" in extra, posterior=post_test)
    timings["encode"] = time.perf_counter() - t0
    mean_train, logvar_train = post_train
    activity = latent_activity(mean_train, logvar_train, kl_threshold=float(kl_threshold))

    scores: dict[str, float] = {}
    if array_names:
        t = time.perf_counter()
        say(f"array metrics: {', '.join(array_names)}")
        scores.update(
            evaluate_arrays(c_train, f_train, c_test, f_test, metrics=array_names, seed=int(seed), dci_estimator=dci_estimator)
        )
        timings["array_metrics"] = time.perf_counter() - t
    inter = [m for m in extra if m in INTERVENTIONAL]
    if inter:
        from untwine.metrics._encode_cache import CodeCache
        from untwine.metrics.beta_vae import beta_vae_score
        from untwine.metrics.factor_vae import factor_vae_score

        cache = CodeCache(dataset, encoder, device=dev) if getattr(dataset, "is_full_grid", False) else None
        common = dict(
            batch_size=int(interventional_batch),
            num_train=int(interventional_train),
            num_eval=int(interventional_eval),
            device=dev,
            cache=cache,
        )
        for name, fn in (("beta_vae", beta_vae_score), ("factor_vae", factor_vae_score)):
            if name in inter:
                t = time.perf_counter()
                say(f"{name} score")
                scores.update({k: float(v) for k, v in fn(dataset, encoder, int(seed), **common).items()})
                timings[name] = time.perf_counter() - t
    if rec is not None:
        scores.update(rec)
    scores["num_active_latents"] = float(np.sum(activity["active"]))
    scores["num_passive_latents"] = float(np.sum(~np.asarray(activity["active"], dtype=bool)))
    comparison: dict[str, Any] = {"enabled": bool(compare_names)}
    if compare_names:
        t = time.perf_counter()
        say(f"mean vs sampled vs active-only: {', '.join(compare_names)}")
        mean_test, logvar_test = post_test
        scores.update(
            compare_on_posterior(
                mean_train, logvar_train, f_train, mean_test, logvar_test, f_test,
                metrics=compare_names, activity=activity, seed=int(seed), dci_estimator=dci_estimator,
            )
        )
        timings["comparison"] = time.perf_counter() - t
        comparison.update(metrics=compare_names, representations=list(COMPARED), sampling_seed=int(seed))
    comparison["deterministic_encoder"] = logvar_train is None
    if logvar_train is None:
        comparison["note"] = "deterministic encoder: the sampled representation equals the mean one"

    settings = {
        "run": str(run.path),
        "step": run.step,
        "model": run.config.model,
        "dataset": run.config.dataset,
        "representation": representation,
        "num_train": int(num_train),
        "num_test": int(num_test),
        "seed": int(seed),
        "metrics": array_names + extra,
        "skipped": skipped,
        "dci_estimator": dci_estimator,
        "interventional": {"num_train": int(interventional_train), "num_eval": int(interventional_eval), "batch_size": int(interventional_batch)},
        "device": str(dev),
        "activity": activity_table(activity),
        "comparison": comparison,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    if write:
        write_metrics(run.path / METRICS_FILE, scores)
        atomic_write_text(run.path / EVALUATION_FILE, json.dumps(settings, indent=1) + "\n")
    return scores


def write_metrics(path, scores: dict[str, float]) -> None:
    """Write ``scores`` as one flat JSON object (NaN/inf as null), atomically."""
    clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in scores.items()}
    atomic_write_text(Path(path), json.dumps(clean, indent=2) + "\n")


def read_settings(run_dir) -> dict[str, Any] | None:
    p = Path(run_dir) / EVALUATION_FILE
    return json.loads(p.read_text()) if p.is_file() else None
