"""The resolved configuration of a training run.

A run is fully described by a :class:`RunConfig`: which model (and its
hyper-parameters), which dataset, how many steps at which batch size, the seed,
and the bookkeeping intervals.  It is built from, in increasing precedence,

1. the defaults below,
2. a YAML file (``--config run.yaml``),
3. explicit arguments (``MODEL``, ``--dataset``, ``--steps``, ``--seed`` ...),
4. ``--set key=value`` overrides, whose values are parsed as YAML scalars
   (``--set beta=4`` gives the int 4, ``--set tensorboard=true`` a bool).

Keys are the fields of :class:`RunConfig`; a model hyper-parameter may be given
bare (``beta=4``) or as ``hparams.beta=4``.  Any other key is an error naming the
valid ones.  The resolved config is written in full to ``RUN_DIR/config.yaml``.

Two configs describe *the same run* (so one may resume the other) when they agree
on everything that changes the trained weights or the log: all fields except
those in :data:`MUTABLE_FIELDS` (``steps`` may grow, the device may change).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from untwine.errors import UntwineError
from untwine.files import atomic_write_text, read_yaml
from untwine.metrics.activity import DEFAULT_KL_THRESHOLD

#: fields that may differ between a run and its resumption
MUTABLE_FIELDS = frozenset({"steps", "device", "checkpoint_every", "keep_checkpoints", "tensorboard"})

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunConfig:
    """Everything that defines a training run (see the module docstring)."""

    model: str | None = None
    dataset: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 5000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    num_latents: int | None = None
    checkpoint_every: int = 1000
    log_every: int = 10
    keep_checkpoints: int = 2
    tensorboard: bool = False

    # -- conversion --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hparams"] = dict(self.hparams)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> "RunConfig":
        cfg = cls()
        apply_mapping(cfg, data, source=source)
        return cfg

    def identity(self) -> dict[str, Any]:
        """The fields that must agree for a run to be resumed under this config."""
        return {k: v for k, v in self.to_dict().items() if k not in MUTABLE_FIELDS}

    def identity_hash(self) -> str:
        blob = json.dumps(_jsonable(self.identity()), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def validate(self) -> "RunConfig":
        """Check types and ranges; raises :class:`UntwineError` with one line."""
        if not self.model or not isinstance(self.model, str):
            raise UntwineError("no model given (name one, e.g. `untwine train beta_vae --dataset dsprites`)")
        if not self.dataset or not isinstance(self.dataset, str):
            raise UntwineError("no dataset given (use --dataset NAME or set `dataset:` in the config file)")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "keep_checkpoints"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise UntwineError(f"{name} must be an integer, got {v!r}")
            low = 0 if name == "steps" else 1
            if v < low:
                raise UntwineError(f"{name} must be at least {low}, got {v}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UntwineError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.device not in DEVICES:
            raise UntwineError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.num_latents is not None and (
            isinstance(self.num_latents, bool) or not isinstance(self.num_latents, int) or self.num_latents < 1
        ):
            raise UntwineError(f"num_latents must be a positive integer, got {self.num_latents!r}")
        if not isinstance(self.tensorboard, bool):
            raise UntwineError(f"tensorboard must be true or false, got {self.tensorboard!r}")
        if not isinstance(self.hparams, dict):
            raise UntwineError(f"hparams must be a mapping, got {self.hparams!r}")
        return self


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


def parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value as a YAML scalar (``4`` -> 4, ``1e-4`` -> 0.0001, ``true`` -> True)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        # YAML 1.1 reads "1e-4" as a string; accept the usual float spellings
        try:
            return float(value) if any(c in value for c in ".eE") or value.lower() in ("inf", "nan") else value
        except ValueError:
            return value
    return value


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """``["beta=4", "steps=100"]`` -> ``{"beta": 4, "steps": 100}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise UntwineError(f"--set expects key=value, got {item!r}")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key:
            raise UntwineError(f"--set expects key=value, got {item!r}")
        out[key] = parse_scalar(value.strip())
    return out


def read_config_file(path) -> dict[str, Any]:
    """Read a YAML run config into a mapping (one-line errors for missing/bad files)."""
    return read_yaml(path, what="config file")


def apply_mapping(
    cfg: RunConfig,
    data: Mapping[str, Any],
    *,
    source: str,
    known_hparams: Iterable[str] | None = None,
) -> RunConfig:
    """Apply ``data`` (config keys, ``hparams`` mapping, bare or dotted hparam names) to ``cfg``.

    ``known_hparams`` (the model's hyper-parameter names) lets bare names like
    ``beta`` through; ``None`` means the model is not known yet, and then only
    ``hparams.NAME`` or the ``hparams`` mapping can set hyper-parameters.
    """
    known = set(known_hparams) if known_hparams is not None else None
    for key, value in data.items():
        key = str(key)
        if key == "hparams":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise UntwineError(f"{source}: hparams must be a mapping, got {value!r}")
            for hk, hv in value.items():
                _set_hparam(cfg, str(hk), hv, known, source)
        elif key.startswith("hparams."):
            _set_hparam(cfg, key[len("hparams."):], value, known, source)
        elif key in FIELDS:
            if key in ("model", "dataset", "device") and value is not None:
                value = str(value)
            setattr(cfg, key, value)
        elif known is not None and key in known:
            cfg.hparams[key] = value
        else:
            valid = ", ".join(f for f in FIELDS if f != "hparams")
            extra = f"; hyper-parameters of {cfg.model}: {', '.join(sorted(known))}" if known else ""
            raise UntwineError(f"{source}: unknown key {key!r} (valid keys: {valid}{extra})")
    return cfg


def _set_hparam(cfg: RunConfig, key: str, value, known, source: str) -> None:
    if known is not None and key not in known:
        names = ", ".join(sorted(known)) or "none"
        raise UntwineError(f"{source}: model {cfg.model!r} has no hyper-parameter {key!r} (it has: {names})")
    cfg.hparams[key] = value


def write_config(cfg: RunConfig, path) -> None:
    """Write ``cfg`` as YAML (atomically)."""
    header = "# untwine run config (resolved); edit a copy and pass it with --config\n"
    atomic_write_text(path, header + yaml.safe_dump(_jsonable(cfg.to_dict()), sort_keys=False))


def load_config(path) -> RunConfig:
    """Read a run's saved ``config.yaml``."""
    return RunConfig.from_dict(read_config_file(path), source=str(path))


def diff_identity(a: RunConfig, b: RunConfig) -> list[str]:
    """Names of the identity fields (and hparams) in which ``a`` and ``b`` differ."""
    da, db = _jsonable(a.identity()), _jsonable(b.identity())
    out = []
    for k in da:
        if k == "hparams":
            ha, hb = da[k], db[k]
            for hk in sorted(set(ha) | set(hb)):
                if ha.get(hk) != hb.get(hk):
                    out.append(f"hparams.{hk} ({ha.get(hk)!r} vs {hb.get(hk)!r})")
        elif da[k] != db[k]:
            out.append(f"{k} ({da[k]!r} vs {db[k]!r})")
    return out


# -- evaluation ---------------------------------------------------------------------------------
#: array metrics of the mean / sampled / active-only comparison when none are given (cheap ones)
DEFAULT_COMPARE_METRICS = "mig,modularity,unsupervised"


@dataclass
class EvaluationConfig:
    """How a trained run is evaluated: ``untwine evaluate``, :func:`untwine.evaluate` and
    studies all take this one config, and ``evaluation.json`` stores it as is.

    Defaults follow disentanglement_lib: 10000 train / 5000 test points for the array
    metrics and for the BetaVAE / FactorVAE scores (batch 64), the posterior mean as the
    representation.  ``metrics`` is ``"all"`` or names of the metric table
    (:mod:`untwine.metrics.registry`, any kind); ``compare_representations`` adds
    ``compare_metrics`` on the mean, sampled and active-only representations;
    ``kl_threshold`` decides which latents are passive; ``reference_scores`` adds what a
    random encoder and the factors themselves score on the same samples
    (:mod:`untwine.train.reference`, cached); ``precision="bfloat16"`` encodes under
    bfloat16 autocast (opt-in; see :mod:`untwine.models.encoder`).
    """

    metrics: str | list[str] = "all"
    representation: str = "mean"
    num_train: int = 10000
    num_test: int = 5000
    seed: int = 0
    device: str = "auto"
    interventional_train: int = 10000
    interventional_eval: int = 5000
    interventional_batch: int = 64
    dci_estimator: str = "fast"
    compare_representations: bool = False
    compare_metrics: str | list[str] = DEFAULT_COMPARE_METRICS
    kl_threshold: float = DEFAULT_KL_THRESHOLD
    reference_scores: bool = True
    precision: str = "float32"

    #: fields that do not change the numbers (left out of :meth:`identity`)
    RUNTIME_FIELDS = ("device",)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("metrics", "compare_metrics"):
            if isinstance(d[key], tuple):
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "evaluation", strict: bool = True) -> "EvaluationConfig":
        """A config from a mapping of field names; with ``strict`` an unknown key is an error,
        otherwise other keys (as in ``evaluation.json``) are ignored."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if strict and unknown:
            raise UntwineError(f"{source}: unknown key {unknown[0]!r} (valid: {', '.join(names)})")
        return cls(**{k: v for k, v in data.items() if k in names})

    def identity(self) -> dict[str, Any]:
        """The fields that decide the numbers: two evaluations agreeing on them give the same scores."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}

    def metric_names(self) -> list[str]:
        """The requested metrics, parsed against the metric table (every kind)."""
        from untwine.metrics import registry

        return registry.parse(self.metrics, registry.KINDS)

    def compare_names(self) -> list[str]:
        """The array metrics of the representation comparison (empty when it is off)."""
        from untwine.metrics import registry

        return registry.parse(self.compare_metrics) if self.compare_representations else []

    def validate(self, where: str | None = None) -> "EvaluationConfig":
        """Check types and ranges; one :class:`UntwineError` line naming the field (as
        ``WHERE.field`` when ``where`` is given, else as its command-line flag)."""
        from untwine.metrics import registry
        from untwine.metrics.activity import REPRESENTATIONS

        def label(name: str) -> str:
            return f"{where}.{name}" if where else name.replace("_", "-")

        for key in ("metrics", "compare_metrics"):
            v = getattr(self, key)
            if isinstance(v, (list, tuple)) and not all(isinstance(x, str) for x in v):
                raise UntwineError(f"{label(key)}: expected metric names, got {v!r}")
            if not isinstance(v, (str, list, tuple)):
                raise UntwineError(f"{label(key)}: expected 'all' or a list of metric names, got {v!r}")
        try:
            self.metric_names()
        except UntwineError as exc:
            raise UntwineError(f"{where}.metrics: {exc}" if where else str(exc)) from None
        for name, low in (
            ("num_train", 2),
            ("num_test", 1),
            ("interventional_train", 2),
            ("interventional_eval", 1),
            ("interventional_batch", 2),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise UntwineError(f"{label(name)} must be an integer >= {low}, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise UntwineError(f"{label('seed')} must be a non-negative integer, got {self.seed!r}")
        if self.representation not in REPRESENTATIONS:
            raise UntwineError(
                f"{label('representation')} must be one of {', '.join(REPRESENTATIONS)}, got {self.representation!r}"
            )
        from untwine.models.encoder import PRECISIONS

        if self.precision not in PRECISIONS:
            raise UntwineError(f"{label('precision')} must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise UntwineError(f"{label('device')} must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dci_estimator not in registry.DCI_ESTIMATORS:
            raise UntwineError(
                f"{label('dci_estimator')} must be one of {', '.join(registry.DCI_ESTIMATORS)}, got {self.dci_estimator!r}"
            )
        for flag in ("compare_representations", "reference_scores"):
            if not isinstance(getattr(self, flag), bool):
                raise UntwineError(f"{label(flag)} must be true or false, got {getattr(self, flag)!r}")
        v = self.kl_threshold
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= float(v) < math.inf:
            raise UntwineError(f"{label('kl_threshold')} must be a number >= 0, got {v!r}")
        registry.parse(self.compare_metrics)  # checked even when the comparison is off
        return self


EVALUATION_FIELDS = tuple(f.name for f in dataclasses.fields(EvaluationConfig))
