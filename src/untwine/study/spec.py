"""Study specs: one YAML file describing a sweep, expanded into runs.

A study file::

    name: tiny                      # optional (default: the file's stem)
    datasets: [dsprites]            # registry names or paths (relative to the file)
    models:
      - name: beta_vae
        hparams: {beta: [1, 4]}     # a list is a grid axis; grids expand as a cartesian product
      - name: beta_tcvae            # a bare string is a model with default hyper-parameters
        hparams: {beta: 6}
    seeds: [0, 1]                   # a list, or an integer n meaning 0..n-1
    train:                          # the training budget, shared by every run
      steps: 30
      batch_size: 16
      device: cpu                   # auto | cpu | cuda
      # also: num_latents, checkpoint_every, log_every, keep_checkpoints
    evaluation:                     # arguments of untwine.api.evaluate
      metrics: [mig, sap, dci, modularity, reconstruction]
      num_train: 500
      num_test: 250
      # also: seed, interventional_train, interventional_eval, interventional_batch,
      #       dci_estimator, representation
    udr:                            # unsupervised model selection across seeds
      enabled: true
      num_points: 1000
      correlation: spearman         # or lasso
    retries: 2                      # extra attempts of a failed run

:func:`load_spec` validates it (one-line :class:`UntwineError` for unknown models,
datasets, hyper-parameters, keys and badly typed values); :func:`expand` turns it
into :class:`RunSpec` objects with a stable, readable run id
``MODEL-DATASET-HPARAMS-sSEED-HASH`` whose hash covers everything that changes the
trained weights except the number of steps (raising ``steps`` continues the
existing runs instead of starting new ones).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from untwine.files import read_yaml

from untwine.errors import UntwineError
from untwine.train.config import EVALUATION_FIELDS, EvaluationConfig

TOP_KEYS = ("name", "datasets", "models", "seeds", "train", "evaluation", "udr", "retries")
TRAIN_KEYS = ("steps", "batch_size", "device", "num_latents", "checkpoint_every", "log_every", "keep_checkpoints")
#: train keys that do not change the weights (left out of the run id hash)
MUTABLE_TRAIN_KEYS = ("steps", "device", "checkpoint_every", "keep_checkpoints")
#: the evaluation settings a study may set: the EvaluationConfig's fields but the device, which is
#: the runs' train.device
EVAL_KEYS = tuple(f for f in EVALUATION_FIELDS if f != "device")
UDR_KEYS = ("enabled", "num_points", "correlation", "kl_threshold", "seed")

TRAIN_DEFAULTS: dict[str, Any] = {"steps": 5000, "batch_size": 64, "device": "auto"}
UDR_DEFAULTS: dict[str, Any] = {"enabled": True, "num_points": 1000, "correlation": "spearman", "kl_threshold": 0.01, "seed": 0}
DEFAULT_RETRIES = 2


@dataclass
class ModelSpec:
    """One model entry: its name and a grid (name -> list of values) of hyper-parameters."""

    name: str
    grid: dict[str, list] = field(default_factory=dict)


@dataclass
class StudySpec:
    """A validated study file (see the module docstring)."""

    name: str
    datasets: list[str]
    models: list[ModelSpec]
    seeds: list[int]
    train: dict[str, Any]
    evaluation: dict[str, Any]
    udr: dict[str, Any]
    retries: int = DEFAULT_RETRIES
    base_dir: Path = field(default_factory=Path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datasets": list(self.datasets),
            "models": [{"name": m.name, "hparams": {k: list(v) for k, v in m.grid.items()}} for m in self.models],
            "seeds": list(self.seeds),
            "train": dict(self.train),
            "evaluation": dict(self.evaluation),
            "udr": dict(self.udr),
            "retries": self.retries,
        }


@dataclass
class RunSpec:
    """One run of a study: a model with fixed hyper-parameters on one dataset with one seed."""

    run_id: str
    config_id: str  #: same for every seed of one configuration (UDR groups by it)
    model: str
    dataset: str  #: as written in the study (name or path)
    dataset_ref: str  #: what ``untwine.data.load`` receives (paths made absolute)
    hparams: dict[str, Any]
    seed: int
    train: dict[str, Any]
    evaluation: dict[str, Any]

    @property
    def steps(self) -> int:
        return int(self.train["steps"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "config_id": self.config_id,
            "model": self.model,
            "dataset": self.dataset,
            "dataset_ref": self.dataset_ref,
            "hparams": dict(self.hparams),
            "seed": self.seed,
            "train": dict(self.train),
            "evaluation": dict(self.evaluation),
        }


# -- validation helpers -------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_keys(data: Mapping, allowed, where: str) -> None:
    for k in data:
        if k not in allowed:
            raise UntwineError(f"study {where}: unknown key {k!r} (valid: {', '.join(allowed)})")


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UntwineError(f"study {where}: expected a mapping, got {value!r}")
    return dict(value)


def _pos_int(v, name: str, low: int = 1) -> int:
    if not _is_int(v) or v < low:
        raise UntwineError(f"study {name}: expected an integer >= {low}, got {v!r}")
    return int(v)


def _check_dataset(name, base_dir: Path) -> tuple[str, str]:
    from untwine import data

    if not isinstance(name, str) or not name.strip():
        raise UntwineError(f"study datasets: expected a name or a path, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key in data.DATASETS:
        return name, key
    p = Path(name).expanduser()
    if not p.is_absolute():
        p = (base_dir / p).resolve()
    if p.is_file():
        return name, str(p)
    raise UntwineError(
        f"study datasets: unknown dataset {name!r}; built-in datasets: {', '.join(data.DATASETS)} (or a path to an existing file)"
    )


def _check_model(entry, index: int) -> ModelSpec:
    from untwine import models

    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping):
        raise UntwineError(f"study models[{index}]: expected a model name or a mapping with name and hparams, got {entry!r}")
    _check_keys(entry, ("name", "hparams"), f"models[{index}]")
    name = entry.get("name")
    if not isinstance(name, str):
        raise UntwineError(f"study models[{index}]: missing model name")
    cls = models.get_model_class(name)  # unknown -> one line listing the models
    hp = _mapping(entry.get("hparams"), f"models[{index}].hparams")
    grid: dict[str, list] = {}
    for k, v in hp.items():
        k = str(k)
        if k not in cls.HPARAMS:
            raise UntwineError(
                f"study models[{index}] ({name}): unknown hyper-parameter {k!r}; its hyper-parameters are: {', '.join(cls.HPARAMS)}"
            )
        values = list(v) if isinstance(v, (list, tuple)) else [v]
        if not values:
            raise UntwineError(f"study models[{index}] ({name}): hyper-parameter {k!r} has an empty list of values")
        coerced = []
        for val in values:
            if isinstance(val, (Mapping, list, tuple)):
                raise UntwineError(f"study models[{index}] ({name}): hyper-parameter {k!r}: expected scalar values, got {val!r}")
            try:
                coerced.append(cls.HPARAMS[k].coerce(k, val))
            except UntwineError as exc:
                raise UntwineError(f"study models[{index}] ({name}): {exc}") from None
        values = coerced
        if len(set(json.dumps(x) for x in values)) != len(values):
            raise UntwineError(f"study models[{index}] ({name}): hyper-parameter {k!r} repeats a value in {values!r}")
        grid[k] = values
    return ModelSpec(name, grid)


def _check_train(train: dict) -> dict:
    _check_keys(train, TRAIN_KEYS, "train")
    out = dict(TRAIN_DEFAULTS)
    out.update(train)
    out["steps"] = _pos_int(out["steps"], "train.steps")
    out["batch_size"] = _pos_int(out["batch_size"], "train.batch_size")
    if out["device"] not in ("auto", "cpu", "cuda"):
        raise UntwineError(f"study train.device: expected auto, cpu or cuda, got {out['device']!r}")
    for k in ("checkpoint_every", "log_every", "keep_checkpoints"):
        if k in out:
            out[k] = _pos_int(out[k], f"train.{k}")
    if out.get("num_latents") is not None:
        out["num_latents"] = _pos_int(out["num_latents"], "train.num_latents")
    return out


def _check_evaluation(ev: dict) -> dict:
    _check_keys(ev, EVAL_KEYS, "evaluation")
    ev = dict(ev)
    if isinstance(ev.get("metrics"), (list, tuple)) and all(isinstance(x, str) for x in ev["metrics"]):
        ev["metrics"] = ",".join(ev["metrics"])
    cfg = EvaluationConfig.from_dict(ev, source="study evaluation").validate(where="study evaluation")
    out = cfg.to_dict()
    del out["device"]
    return out


def _check_udr(udr) -> dict:
    from untwine.study.udr import CORRELATIONS

    if isinstance(udr, bool):
        udr = {"enabled": udr}
    udr = _mapping(udr, "udr")
    _check_keys(udr, UDR_KEYS, "udr")
    out = dict(UDR_DEFAULTS)
    out.update(udr)
    if not isinstance(out["enabled"], bool):
        raise UntwineError(f"study udr.enabled: expected true or false, got {out['enabled']!r}")
    out["num_points"] = _pos_int(out["num_points"], "udr.num_points", 3)
    out["seed"] = _pos_int(out["seed"], "udr.seed", 0)
    if out["correlation"] not in CORRELATIONS:
        raise UntwineError(f"study udr.correlation: expected one of {', '.join(CORRELATIONS)}, got {out['correlation']!r}")
    kt = out["kl_threshold"]
    if isinstance(kt, bool) or not isinstance(kt, (int, float)) or kt < 0:
        raise UntwineError(f"study udr.kl_threshold: expected a number >= 0, got {kt!r}")
    out["kl_threshold"] = float(kt)
    return out


def parse_spec(data: Mapping[str, Any], *, base_dir=None, default_name: str = "study") -> StudySpec:
    """Validate a study mapping (as read from YAML) into a :class:`StudySpec`."""
    if not isinstance(data, Mapping):
        raise UntwineError("a study file must hold a mapping (datasets, models, seeds, train, evaluation ...)")
    _check_keys(data, TOP_KEYS, "file")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    name = data.get("name", default_name)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UntwineError(f"study name: expected letters, digits, '_', '-' or '.', got {name!r}")

    ds = data.get("datasets", data.get("dataset"))
    if ds is None:
        raise UntwineError("study file: no datasets given (e.g. `datasets: [dsprites]`)")
    ds = [ds] if isinstance(ds, str) else ds
    if not isinstance(ds, list) or not ds:
        raise UntwineError(f"study datasets: expected a non-empty list of names or paths, got {ds!r}")
    datasets = [_check_dataset(d, base)[0] for d in ds]
    if len(set(datasets)) != len(datasets):
        raise UntwineError(f"study datasets: a dataset is listed twice in {datasets!r}")

    ms = data.get("models")
    if ms is None:
        raise UntwineError("study file: no models given (e.g. `models: [{name: beta_vae, hparams: {beta: [1, 4]}}]`)")
    ms = [ms] if isinstance(ms, (str, Mapping)) else ms
    if not isinstance(ms, list) or not ms:
        raise UntwineError(f"study models: expected a non-empty list, got {ms!r}")
    models = [_check_model(m, i) for i, m in enumerate(ms)]

    seeds = data.get("seeds", [0])
    if _is_int(seeds):
        if seeds < 1:
            raise UntwineError(f"study seeds: expected a list of seeds or a count >= 1, got {seeds!r}")
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        raise UntwineError(f"study seeds: expected a list of non-negative integers or a count, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise UntwineError(f"study seeds: a seed is listed twice in {seeds!r}")

    retries = data.get("retries", DEFAULT_RETRIES)
    retries = _pos_int(retries, "retries", 0)
    return StudySpec(
        name=name,
        datasets=datasets,
        models=models,
        seeds=[int(s) for s in seeds],
        train=_check_train(_mapping(data.get("train"), "train")),
        evaluation=_check_evaluation(_mapping(data.get("evaluation"), "evaluation")),
        udr=_check_udr(data.get("udr")),
        retries=retries,
        base_dir=base,
    )


def load_spec(path, overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read and validate a study YAML file.

    ``overrides`` maps dotted keys to values applied on top of the file
    (``{"train.steps": 5, "seeds": [0]}``), e.g. to shrink a study in tests.
    """
    p = Path(path)
    data = read_yaml(p, what="study file", holds="datasets, models, seeds, train, evaluation ...")
    data = apply_overrides(data, overrides or {})
    return parse_spec(data, base_dir=p.resolve().parent, default_name=_safe(p.stem) or "study")


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """``data`` with dotted keys of ``overrides`` set (``"train.steps"`` -> ``data["train"]["steps"]``)."""
    out = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise UntwineError(f"study override {key!r}: {part!r} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return out


# -- expansion --------------------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(text)).strip("_.")


def _fmt_value(v) -> str:
    if isinstance(v, float):
        s = f"{v:g}"
    else:
        s = str(v)
    return _safe(s.replace("-", "m"))


def _short_hash(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _dataset_label(name: str) -> str:
    p = Path(name)
    return _safe(p.stem if p.suffix else name) or "data"


def expand(spec: StudySpec) -> list[RunSpec]:
    """Every run of ``spec``: datasets x models x hyper-parameter grid x seeds, in a stable order."""
    runs: list[RunSpec] = []
    seen: dict[str, RunSpec] = {}
    weight_train = {k: v for k, v in spec.train.items() if k not in MUTABLE_TRAIN_KEYS}
    for ds in spec.datasets:
        _, ref = _check_dataset(ds, spec.base_dir)
        for m in spec.models:
            keys = list(m.grid)
            for combo in itertools.product(*(m.grid[k] for k in keys)):
                hp = dict(zip(keys, combo))
                identity = {"model": m.name, "dataset": ds, "hparams": hp, "train": weight_train}
                config_id = _short_hash(identity)
                for seed in spec.seeds:
                    h = _short_hash({**identity, "seed": seed})
                    hp_part = "_".join(f"{_safe(k)}{_fmt_value(v)}" for k, v in hp.items()) or "default"
                    rid = f"{m.name}-{_dataset_label(ds)}-{hp_part}-s{seed}-{h}"
                    if rid in seen:
                        raise UntwineError(f"study: run {rid} appears twice (a model and grid are listed twice)")
                    r = RunSpec(
                        run_id=rid,
                        config_id=config_id,
                        model=m.name,
                        dataset=ds,
                        dataset_ref=ref,
                        hparams=hp,
                        seed=int(seed),
                        train=dict(spec.train),
                        evaluation=dict(spec.evaluation),
                    )
                    seen[rid] = r
                    runs.append(r)
    return runs
