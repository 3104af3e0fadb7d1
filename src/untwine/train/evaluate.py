"""Evaluating a trained run: the whole metric suite on its dataset (``untwine evaluate``).

Following disentanglement_lib's practice, a *train* sample of ``num_train``
(10000) and a *test* sample of ``num_test`` (5000) observations are drawn afresh
with ``numpy.random.default_rng(seed)`` by ``dataset.evaluation_rows``, rendered and
encoded.  No test row is a train row: a dataset with a test split of its own (labelled
series) gives the test rows from that split only (``"held-out"``); files and other stored
rows are split once into train and test rows (``"held-out rows"``); only procedural full
grids (the renderers) draw both as independent uniform draws of factor combinations, train
first (``"same-distribution draws"``; see :mod:`untwine.data.base`).  ``metrics.json``
names the kind under ``_test_split``, ``evaluation.json`` under ``test_split`` with a
sentence saying where the test rows came from.  On these codes:

* the array metrics of :func:`untwine.metrics.suite.evaluate_arrays` (MIG, SAP,
  DCI, Modularity, Explicitness, IRS, unsupervised, InfoMEC) - the keys of
  ``untwine score``;
* the interventional BetaVAE and FactorVAE scores
  (:func:`~untwine.metrics.beta_vae.beta_vae_score`,
  :func:`~untwine.metrics.factor_vae.factor_vae_score`, dlib defaults: batch 64,
  10000 train / 5000 eval points; ``interventional_train``/``_eval``/``_batch``
  reduce them), sharing one code cache;
* ``reconstruction``: the mean per-image reconstruction loss on the test sample
  under the model's own likelihood (its ``reconstruction`` setting: summed Bernoulli
  cross-entropy, or summed squared error for ``gaussian`` - disentanglement_lib's
  ``reconstruction_loss``), decoding the chosen representation;
  ``reconstruction_mse`` is the per-pixel mean squared error.  A model without a
  decoder (the factor classifier) has none: ``all`` skips it, asking for it by name is an
  error;
* ``accuracy`` (models with factor heads, ``model.predict``: the factor classifier): the
  share of test rows whose factor the model predicts exactly, ``accuracy.<factor>`` per
  factor and ``accuracy_mean`` their mean; skipped by ``all`` for other models.

Why a metric was skipped is written to ``evaluation.json`` under ``skipped_reasons``.

``representation="mean"`` uses the posterior mean (``model.encode``);
``"sampled"`` draws ``mean + exp(logvar / 2) * eps`` with a generator seeded by
``seed`` (deterministic encoders are unaffected).  Scores go to
``RUN_DIR/metrics.json`` (one flat object, NaN as null) and the
:class:`~untwine.train.config.EvaluationConfig`, as is, to ``RUN_DIR/evaluation.json``
together with the run's step, what was computed and skipped, the activity table and
the seconds each phase took.

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

from typing import Any, Sequence

import numpy as np

from untwine.device import resolve_device
from untwine.errors import UntwineError
from untwine.files import read_json, write_json, write_scores
from untwine.metrics import registry
from untwine.metrics.activity import REPRESENTATIONS  # noqa: F401  (re-exported: the representations evaluate accepts)
from untwine.progress import Phases
from untwine.train.config import EvaluationConfig
from untwine.train.run import METRICS_FILE, open_run

EVALUATION_FILE = "evaluation.json"
#: metrics.json key naming where the test rows came from (see :mod:`untwine.data.base`)
TEST_SPLIT_KEY = "_test_split"
#: the three representations of the comparison, as key prefixes
COMPARED = ("mean", "sampled", "mean_active")


def parse_evaluation_metrics(spec: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """Split a ``--metrics`` spec into (array metric names, the other metrics' names), both from
    the metric table (:mod:`untwine.metrics.registry`)."""
    names = registry.parse(spec, registry.KINDS)
    array = set(registry.names())
    return [n for n in names if n in array], [n for n in names if n not in array]


def activity_table(activity: dict) -> dict[str, Any]:
    """JSON-ready form of :func:`untwine.metrics.activity.latent_activity` (for evaluation.json)."""
    from untwine.metrics.activity import activity_summary

    active = np.asarray(activity["active"], dtype=bool)
    latents = []
    for j in range(active.size):
        row: dict[str, Any] = {"index": j}
        for key in ("kl", "mean_variance", "posterior_variance", "collapsed_fraction"):
            arr = activity.get(key)
            row[key] = None if arr is None else float(arr[j])
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


def evaluation_config(config: EvaluationConfig | None = None, **fields: Any) -> EvaluationConfig:
    """``config`` (default: the defaults) with ``fields`` set, validated."""
    cfg = EvaluationConfig(**(config.to_dict() if config is not None else {}))
    for key, value in fields.items():
        if key not in EvaluationConfig.__dataclass_fields__:
            raise UntwineError(f"unknown evaluation setting {key!r} (valid: {', '.join(EvaluationConfig.__dataclass_fields__)})")
        setattr(cfg, key, value)
    return cfg.validate()


def evaluate_run(
    run_dir,
    config: EvaluationConfig | None = None,
    *,
    dataset=None,
    write: bool = True,
    progress: Phases | bool | None = None,
    **fields: Any,
) -> dict[str, float]:
    """Evaluate the run in ``run_dir`` (see the module docstring); returns the flat scores.

    ``config`` is an :class:`~untwine.train.config.EvaluationConfig`; its fields may also be
    given (or overridden) as keywords (``num_train=2000``, ``compare_representations=True``).
    ``dataset`` replaces the run's dataset (checked against the one it was trained on);
    ``write`` writes ``metrics.json`` and ``evaluation.json``; ``progress`` (a
    :class:`~untwine.progress.Phases`, or True for one) shows each long phase (encoding,
    array metrics, interventional scores, the comparison) as it runs.
    """
    from untwine._memory import reuse_freed_memory
    from untwine.metrics.activity import latent_activity

    cfg = evaluation_config(config, **fields)
    reuse_freed_memory()  # hundreds of thousands of images, batch after batch: no page-fault storm
    names = cfg.metric_names()
    compare_names = cfg.compare_names()
    phases = progress if isinstance(progress, Phases) else Phases(bool(progress))

    run = open_run(run_dir)
    run.require_checkpoint()
    dataset = run.dataset(dataset)
    dev = resolve_device(cfg.device)
    model = run.load_model(dev)
    names, reasons = applicable_metrics(names, model, dataset, asked_all=registry.asks_all(cfg.metrics))
    skipped = list(reasons)
    kinds = {n: registry.METRICS[n].kind for n in names}
    array_names = [n for n in names if kinds[n] == "array"]
    encoder = run.encoder(cfg.representation, seed=cfg.seed, device=dev, precision=cfg.precision, model=model)

    rows = dataset.evaluation_rows(int(cfg.num_train), int(cfg.num_test), np.random.default_rng(int(cfg.seed)))
    i_train, i_test, test_data = rows.train, rows.test, rows.test_dataset
    f_train, f_test = dataset.factors_of(i_train), test_data.factors_of(i_test)
    with phases.phase("encode train + test samples", total=int(cfg.num_train + cfg.num_test), key="encode") as ph:
        train = encoder.encode_indices(dataset, i_train, posterior=True, advance=ph.advance)
        test = encoder.encode_indices(test_data, i_test, posterior=bool(compare_names),
                                      reconstruct="reconstruction" in kinds, predict="accuracy" in kinds,
                                      advance=ph.advance)
    activity = latent_activity(train.mean, train.logvar, kl_threshold=float(cfg.kl_threshold))

    scores: dict[str, float] = {}
    if array_names:
        from untwine.metrics.suite import evaluate_arrays

        with phases.phase(f"array metrics ({', '.join(array_names)})", key="array_metrics"):
            scores.update(
                evaluate_arrays(
                    train.codes, f_train, test.codes, f_test,
                    metrics=array_names, seed=int(cfg.seed), dci_estimator=cfg.dci_estimator,
                )
            )
    inter = [n for n in names if kinds[n] == "interventional"]
    if inter:
        from untwine.metrics._encode_cache import CodeCache

        cache = CodeCache(dataset, encoder, device=dev) if getattr(dataset, "is_full_grid", False) else None
        common = dict(
            batch_size=int(cfg.interventional_batch),
            num_train=int(cfg.interventional_train),
            num_eval=int(cfg.interventional_eval),
            device=dev,
            cache=cache,
        )
        for name in inter:
            with phases.phase(f"{name} score (images encoded)", key=name) as ph:
                if cache is not None:
                    cache.advance = ph.advance
                scores.update({k: float(v) for k, v in registry.METRICS[name](dataset, encoder, int(cfg.seed), **common).items()})
    if test.reconstruction is not None:
        scores.update(test.reconstruction)
    if test.predictions is not None:
        scores.update(factor_accuracy(test.predictions, f_test, dataset.factor_names))
    scores["num_active_latents"] = float(np.sum(activity["active"]))
    scores["num_passive_latents"] = float(np.sum(~np.asarray(activity["active"], dtype=bool)))
    comparison: dict[str, Any] = {"enabled": bool(compare_names)}
    if compare_names:
        with phases.phase(f"mean vs sampled vs active-only ({', '.join(compare_names)})", key="comparison"):
            scores.update(
                compare_on_posterior(
                    train.mean, train.logvar, f_train, test.mean, test.logvar, f_test,
                    metrics=compare_names, activity=activity, seed=int(cfg.seed), dci_estimator=cfg.dci_estimator,
                )
            )
        comparison.update(metrics=compare_names, representations=list(COMPARED), sampling_seed=int(cfg.seed))
    comparison["deterministic_encoder"] = train.logvar is None
    if train.logvar is None:
        comparison["note"] = "deterministic encoder: the sampled representation equals the mean one"

    reference = None
    if cfg.reference_scores and array_names:
        from untwine.train.reference import reference_scores

        with phases.phase("reference scores (random encoder, factors)", key="reference"):
            reference = reference_scores(run, dataset, cfg, f_train, f_test, i_train, i_test, test_dataset=test_data)

    settings = {
        **cfg.to_dict(),
        "findings": run_findings(train.codes, f_train, dataset, activity),
        "run": str(run.path),
        "step": run.step,
        "model": run.config.model,
        "dataset": run.config.dataset,
        "computed": names,
        "skipped": skipped,
        "skipped_reasons": reasons,
        "resolved_device": str(dev),
        "test_split": {"kind": rows.test_split, "test_data": str(test_data.name), "note": rows.note},
        "activity": activity_table(activity),
        "comparison": comparison,
        "reference": reference,
        "seconds": {k: round(v, 3) for k, v in phases.seconds.items()},
    }
    if write:
        labels = registry.score_labels(names, dci_estimator=cfg.dci_estimator)
        write_metrics(run.path / METRICS_FILE, scores, test_split=rows.test_split, labels=labels)
        write_json(run.path / EVALUATION_FILE, settings, indent=1)
    return scores


def applicable_metrics(names: list[str], model, dataset, *, asked_all: bool) -> tuple[list[str], dict[str, str]]:
    """``(names that apply, {skipped name: why})``.  ``all`` means all that apply: the
    interventional scores need a full factor grid, some metrics at least two factors,
    ``reconstruction`` a decoder, ``accuracy`` factor heads; a metric named explicitly that
    cannot apply to the model is an error (one line)."""
    from untwine.models.base import has_decoder

    kind = getattr(model, "name", type(model).__name__)
    needs = {
        "reconstruction": (has_decoder(model), f"{kind} has no decoder"),
        "accuracy": (callable(getattr(model, "predict", None)), f"{kind} has no factor heads (factor_classifier has)"),
    }
    reasons: dict[str, str] = {}
    for n in names:
        ok, why = needs.get(n, (True, ""))
        if not ok:
            if not asked_all:
                raise UntwineError(f"metric {n} does not apply: {why}")
            reasons[n] = why
        elif asked_all and registry.METRICS[n].kind == "interventional" and not getattr(dataset, "is_full_grid", False):
            reasons[n] = "the interventional scores need a full factor grid"
        elif asked_all and registry.METRICS[n].min_factors > dataset.num_factors:
            reasons[n] = f"needs at least {registry.METRICS[n].min_factors} factors"
    return [n for n in names if n not in reasons], reasons


def factor_accuracy(predictions: np.ndarray, factors: np.ndarray, factor_names) -> dict[str, float]:
    """``accuracy.<factor>``: share of rows whose factor is predicted exactly, per factor, and
    ``accuracy_mean``, their mean."""
    pred, true = np.asarray(predictions), np.asarray(factors)
    if pred.shape != true.shape:
        raise UntwineError(f"predictions of shape {pred.shape} for factors of shape {true.shape}")
    names = [str(n) for n in factor_names] or [str(k) for k in range(true.shape[1])]
    acc = (pred == true).mean(axis=0)
    out = {f"accuracy.{n}": float(a) for n, a in zip(names, acc)}
    out["accuracy_mean"] = float(acc.mean())
    return out


def run_findings(codes, factors, dataset, activity) -> dict[str, Any]:
    """Which factor lives in which latent (:func:`untwine.metrics.findings.factor_findings`) on the
    train sample, with the normalised-MI matrix it was read from; passive latents are not credited."""
    from untwine.metrics.findings import factor_findings
    from untwine.metrics.matrices import normalized_mi

    names = [str(n) for n in getattr(dataset, "factor_names", ())] or [f"factor {k}" for k in range(factors.shape[1])]
    nmi = normalized_mi(codes, factors)
    out = factor_findings(nmi, names, passive_latents=activity["passive_latents"])
    out["normalized_mi"] = [[round(float(v), 6) for v in row] for row in nmi]
    return out


def write_metrics(path, scores: dict[str, float], *, test_split: str | None = None,
                  labels: dict[str, str] | None = None) -> None:
    """Write ``scores`` as one flat JSON object (NaN/inf as null, listed under ``_undefined``), atomically;
    ``test_split`` (where the ``*_test`` scores' rows came from, one of
    :data:`untwine.data.base.TEST_SPLITS`) goes under ``_test_split``; ``labels``
    (:func:`untwine.metrics.registry.score_labels`) say how the scores were computed."""
    extra = dict(labels or {})
    if test_split is not None:
        extra[TEST_SPLIT_KEY] = test_split
    write_scores(path, scores, extra=extra)


def read_settings(run_dir) -> dict[str, Any] | None:
    """The run's ``evaluation.json`` (None when it has not been evaluated)."""
    from pathlib import Path

    p = Path(run_dir) / EVALUATION_FILE
    return read_json(p) if p.is_file() else None


def saved_config(settings: dict[str, Any]) -> EvaluationConfig:
    """The :class:`EvaluationConfig` an ``evaluation.json`` was computed with."""
    return EvaluationConfig.from_dict(settings, strict=False)
