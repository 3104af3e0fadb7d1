"""The metric table: every metric untwine computes, registered once.

Each :class:`Metric` names its function (imported when first called, so the table
costs nothing at start-up), the keys it returns, which split it reports on and
what it needs:

* ``kind="array"``: codes and factors (``untwine score``, :func:`evaluate_arrays`);
  ``inputs`` says how it is called: ``"train"`` -> ``fn(codes, factors)``,
  ``"train_test"`` -> ``fn(train_codes, train_factors, test_codes, test_factors)``,
  ``"codes"`` -> ``fn(codes)``; ``options`` lists the keyword settings it takes
  (``seed``, ``estimator`` for DCI's importance estimator);
* ``kind="interventional"``: a ground-truth dataset and an encoder
  (``fn(dataset, encoder, seed, **settings)``; ``untwine evaluate``);
* ``kind="run"``: computed by the run evaluation itself while it encodes
  (reconstruction, for models with a decoder; accuracy, for models with factor heads:
  besides ``accuracy_mean`` it writes one ``accuracy.<factor>`` key per factor).

The suite's order, ``--metrics`` parsing, the CLI help, the JSON keys and the
study's metric columns all come from :data:`METRICS`; adding a metric is one
:func:`register` call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from untwine.errors import UntwineError
from untwine.registry import Registry

KINDS = ("array", "interventional", "run")
INPUTS = ("train", "train_test", "codes")

#: DCI's importance estimators: untwine's LightGBM one and the reference gradient-boosted trees
DCI_ESTIMATORS: tuple[str, ...] = ("fast", "gbt")
#: what each DCI estimator is, in words (shown beside DCI scores)
DCI_ESTIMATOR_TEXT: dict[str, str] = {
    "fast": "untwine's LightGBM estimator, not the GBT of disentanglement_lib and most papers "
            "(within 0.05 of it; --dci-estimator gbt for that)",
    "gbt": "scikit-learn's GradientBoostingClassifier, as in disentanglement_lib",
}


@dataclass(frozen=True)
class Metric:
    """One registered metric (see the module docstring)."""

    name: str
    target: str | Callable | None  #: ``"module:function"``, a callable, or None (computed by the run evaluation)
    keys: tuple[str, ...]
    split: str  #: which split it reports on, in words
    kind: str = "array"
    inputs: str = "train"
    options: tuple[str, ...] = ()
    test_keys: frozenset[str] = field(default_factory=frozenset)  #: keys scored on the test split
    aliases: tuple[str, ...] = ()
    lower_is_better: frozenset[str] = field(default_factory=frozenset)
    min_factors: int = 1  #: fewer factors than this: the metric does not apply ("all" skips it)

    @property
    def function(self) -> Callable:
        if callable(self.target):
            return self.target
        if self.target is None:
            raise UntwineError(f"metric {self.name} is computed by the run evaluation, not called directly")
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, *args, **kwargs) -> dict:
        return self.function(*args, **kwargs)


#: name -> metric, in report order
METRICS: Registry[Metric] = Registry("metric")


def register(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the table (``replace`` allows re-registering a name)."""
    if metric.kind not in KINDS:
        raise UntwineError(f"metric {metric.name}: kind must be one of {', '.join(KINDS)}, got {metric.kind!r}")
    if metric.inputs not in INPUTS:
        raise UntwineError(f"metric {metric.name}: inputs must be one of {', '.join(INPUTS)}, got {metric.inputs!r}")
    return METRICS.add(metric.name, metric, replace=replace)


def unregister(name: str) -> None:
    """Remove ``name`` from the table (for tests and plug-ins)."""
    METRICS.pop(name, None)


def names(kinds: Iterable[str] = ("array",)) -> list[str]:
    """Registered metric names of the given kinds, in table order."""
    kinds = tuple(kinds)
    return [m.name for m in METRICS.values() if m.kind in kinds]


def keys_of(metric_names: Iterable[str]) -> list[str]:
    """The output keys of ``metric_names``, in table order of the names given."""
    return [k for n in metric_names for k in METRICS[n].keys]


def score_keys(kinds: Iterable[str] = ("array",)) -> tuple[str, ...]:
    """Every key the metrics of ``kinds`` can return, in report order."""
    return tuple(keys_of(names(kinds)))


def test_keys() -> frozenset[str]:
    """Keys reported on the test split (their models are fitted on the train split)."""
    return frozenset(k for m in METRICS.values() for k in m.test_keys)


#: counts reported beside the scores (``untwine evaluate``), with no better direction: a study names no leader
COUNTS = frozenset({"num_active_latents", "num_passive_latents", "factor_vae_num_active_dims"})


def lower_is_better() -> frozenset[str]:
    """Keys whose smaller values are better (every other key: higher is better)."""
    return frozenset(k for m in METRICS.values() for k in m.lower_is_better)


def help_list(kinds: Iterable[str] = ("array",)) -> str:
    """``"mig, sap, ..."``: the names for a CLI help text."""
    return ", ".join(names(kinds))


def asks_all(spec: str | Sequence[str]) -> bool:
    """Whether a ``--metrics`` spec contains ``all``."""
    return "all" in _parts(spec)


def _parts(spec: str | Sequence[str]) -> list[str]:
    parts = spec.split(",") if isinstance(spec, str) else [p for item in spec for p in str(item).split(",")]
    return [p.strip().lower().replace("-", "_") for p in parts if p.strip()]


def parse(spec: str | Sequence[str], kinds: Iterable[str] = ("array",)) -> list[str]:
    """Turn ``"all"``, ``"mig,sap"`` or ``["mig", "sap"]`` into metric names of ``kinds``.

    Names are case-insensitive (``-`` reads as ``_``; aliases such as ``betavae``
    are accepted), returned in table order without duplicates; ``all`` means every
    metric of ``kinds``; an unknown name raises :class:`UntwineError` listing the
    valid ones.
    """
    kinds = tuple(kinds)
    valid = names(kinds)
    given = _parts(spec)
    if not given:
        raise UntwineError(f"no metric given; choose 'all' or some of: {', '.join(valid)}")
    if "all" in given:
        return valid
    alias = {a: m.name for m in METRICS.values() if m.name in valid for a in m.aliases}
    given = [alias.get(n, n) for n in given]
    unknown = [n for n in given if n not in valid]
    if unknown:
        raise UntwineError(
            f"unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)}; "
            f"valid: all, {', '.join(valid)}"
        )
    return [n for n in valid if n in given]


#: scores-file label naming the estimator that produced the DCI scores ("fast" or "gbt")
DCI_ESTIMATOR_LABEL = "_dci_estimator"


def score_labels(metric_names: Iterable[str], *, dci_estimator: str) -> dict[str, str]:
    """Labels a scores file carries beside the scores (:func:`untwine.files.write_scores`):
    which DCI estimator produced the ``dci_*`` scores, when DCI is among ``metric_names``, so
    that a fast number is never compared with a paper's GBT number unawares."""
    return {DCI_ESTIMATOR_LABEL: dci_estimator} if "dci" in set(metric_names) else {}


def call_array(name: str, tr_c, tr_f, te_c, te_f, *, seed: int, dci_estimator: str) -> dict:
    """Run array metric ``name`` on a train/test split with the suite's settings."""
    m = METRICS[name]
    args = {"train": (tr_c, tr_f), "train_test": (tr_c, tr_f, te_c, te_f), "codes": (tr_c,)}[m.inputs]
    settings = {"seed": seed, "estimator": dci_estimator}
    return m(*args, **{k: settings[k] for k in m.options})


_TRAIN = "train"
_FIT = "fit train, score test"
_FIT_BOTH = "fit train, score train+test"

for _m in (
    Metric("mig", "untwine.metrics.mig:mig", ("mig",), _TRAIN),
    Metric("sap", "untwine.metrics.sap:sap", ("sap",), _FIT, inputs="train_test", test_keys=frozenset({"sap"})),
    Metric(
        "dci",
        "untwine.metrics.dci:dci",
        ("dci_disentanglement", "dci_completeness", "dci_informativeness_train", "dci_informativeness_test"),
        _FIT_BOTH,
        inputs="train_test",
        options=("estimator", "seed"),
        test_keys=frozenset({"dci_informativeness_test"}),
    ),
    Metric("modularity", "untwine.metrics.modularity:modularity", ("modularity",), _TRAIN),
    Metric(
        "explicitness",
        "untwine.metrics.explicitness:explicitness",
        ("explicitness_train", "explicitness_test"),
        _FIT_BOTH,
        inputs="train_test",
        test_keys=frozenset({"explicitness_test"}),
    ),
    Metric("irs", "untwine.metrics.irs:irs", ("irs",), _TRAIN),
    Metric(
        "unsupervised",
        "untwine.metrics.unsupervised:unsupervised",
        (
            "gaussian_total_correlation",
            "gaussian_wasserstein_correlation",
            "gaussian_wasserstein_correlation_norm",
            "mutual_info_score",
        ),
        _TRAIN,
        inputs="codes",
        lower_is_better=frozenset(
            {
                "gaussian_total_correlation",
                "gaussian_wasserstein_correlation",
                "gaussian_wasserstein_correlation_norm",
                "mutual_info_score",
            }
        ),
    ),
    Metric("infomec", "untwine.metrics.infomec:infomec", ("infom", "infoe", "infoc"), _TRAIN, options=("seed",)),
    Metric(
        "beta_vae",
        "untwine.metrics.beta_vae:beta_vae_score",
        ("beta_vae_score", "beta_vae_train_accuracy"),
        "fresh interventional draws",
        kind="interventional",
        aliases=("beta_vae_score", "betavae"),
        min_factors=2,
    ),
    Metric(
        "factor_vae",
        "untwine.metrics.factor_vae:factor_vae_score",
        ("factor_vae_score", "factor_vae_train_accuracy", "factor_vae_num_active_dims"),
        "fresh interventional draws",
        kind="interventional",
        aliases=("factor_vae_score", "factorvae"),
        min_factors=2,
    ),
    Metric(
        "reconstruction",
        None,
        ("reconstruction", "reconstruction_mse"),
        "test",
        kind="run",
        lower_is_better=frozenset({"reconstruction", "reconstruction_mse"}),
    ),
    # models with factor heads (factor_classifier): per-factor keys accuracy.<factor> beside the mean
    Metric("accuracy", None, ("accuracy_mean",), "test", kind="run"),
):
    register(_m)
del _m
