"""Run directories: what a training run leaves on disk, and reading it back.

A run directory holds::

    run.json          marker: untwine version, dataset description, config hash
    config.yaml       the full resolved RunConfig
    log.csv           loss terms every log_every steps
    checkpoints/      atomic checkpoints (see untwine.train.checkpoint)
    metrics.json      written by `untwine evaluate`
    tensorboard/      only with tensorboard=true

:func:`open_run` reads one back; :meth:`Run.load_model` rebuilds the model from
its config and loads the latest checkpoint's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.device import resolve_device  # noqa: F401  (re-exported: untwine.train.resolve_device)
from untwine.errors import UntwineError
from untwine.files import read_json
from untwine.train.checkpoint import CHECKPOINT_DIR, Checkpoint, latest_checkpoint, load_weights
from untwine.train.config import RunConfig, load_config
from untwine.train.log import LOG_FILE, read_log

RUN_MARKER = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
#: every file or folder a run may create (and --overwrite may delete)
RUN_FILES = (RUN_MARKER, CONFIG_FILE, LOG_FILE, CHECKPOINT_DIR, METRICS_FILE, "evaluation.json", "tensorboard", "report", "report.html")


def dataset_info(dataset) -> dict[str, Any]:
    """What a model needs to know about its dataset to be rebuilt without it."""
    return {
        "name": str(getattr(dataset, "name", "dataset")),
        "observation_shape": [int(s) for s in dataset.observation_shape],
        "binary": bool(dataset.binary),
        "num_factors": int(dataset.num_factors),
        "factor_names": [str(n) for n in dataset.factor_names],
        "factor_sizes": [int(s) for s in dataset.factor_sizes],
    }


def check_dataset(info: dict[str, Any], dataset, where) -> None:
    """One error line when ``dataset`` differs from the data described by ``info`` (see
    :func:`dataset_info`) in observation shape or factor sizes; ``where`` names the run."""
    have = dataset_info(dataset)
    for key, words in (("observation_shape", "observations of shape"), ("factor_sizes", "factor_sizes")):
        if info.get(key) is not None and list(info[key]) != list(have[key]):
            raise UntwineError(
                f"{where} was trained on data with {words} {tuple(info[key])}, "
                f"but dataset {have['name']!r} has {words} {tuple(have[key])}"
            )


def build_model(cfg: RunConfig, info: dict[str, Any]):
    """Build ``cfg.model`` for a dataset described by ``info`` (see :func:`dataset_info`)."""
    from untwine import models

    from untwine.models.common import RESERVED

    hparams = {k: v for k, v in cfg.hparams.items() if k not in RESERVED}
    if cfg.num_latents is not None:
        hparams[latent_hparam_name(cfg.model)] = cfg.num_latents
    return models.build_model(
        cfg.model,
        tuple(info["observation_shape"]),
        binary=bool(info["binary"]),
        num_factors=int(info["num_factors"]),
        factor_sizes=info.get("factor_sizes"),
        factor_names=info.get("factor_names"),
        **hparams,
    )


def model_hparam_names(name: str) -> list[str] | None:
    """Hyper-parameter names of model ``name`` (None when the model is unknown)."""
    from untwine import models

    try:
        hp = models.model_hparams(name)
    except UntwineError:
        return None
    return list(hp)


def latent_hparam_name(model: str) -> str:
    names = model_hparam_names(model) or []
    for cand in ("num_latents", "latent_dim", "z_dim"):
        if cand in names:
            return cand
    return "num_latents"


@dataclass
class Run:
    """A run directory read back from disk."""

    path: Path
    config: RunConfig
    info: dict[str, Any] = field(default_factory=dict)
    model: Any = None  #: set by :func:`untwine.train.train` to the trained model
    train_seconds: float | None = None  #: set by :func:`untwine.train.train`: wall time of its training loop

    @property
    def checkpoint(self) -> Checkpoint | None:
        return latest_checkpoint(self.path)

    @property
    def step(self) -> int:
        ck = self.checkpoint
        return ck.step if ck else 0

    def require_checkpoint(self) -> Checkpoint:
        """The latest checkpoint; one error line when the run has none yet."""
        ck = self.checkpoint
        if ck is None:
            raise UntwineError(f"{self.path}: run has no checkpoint yet (train it first, or resume it)")
        return ck

    def dataset(self, dataset=None):
        """The run's dataset (loaded by the name or path in its config unless ``dataset`` is given),
        checked against the data the run was trained on."""
        if dataset is None:
            from untwine import data

            dataset = data.load(self.config.dataset)
        check_dataset(self.info, dataset, self.path)
        return dataset

    def load_model(self, device="cpu"):
        """The model rebuilt from the config with the latest checkpoint's weights, in eval mode."""
        ck = self.require_checkpoint()
        dev = resolve_device(device)
        torch_state = torch.get_rng_state()
        try:
            model = build_model(self.config, self.info)
        finally:
            torch.set_rng_state(torch_state)  # building must not disturb the caller's RNG
        load_weights(model, ck, device="cpu")
        model.to(dev)
        model.eval()
        return model

    def encoder(self, representation: str = "mean", *, seed: int = 0, device="cpu", model=None, batch_size: int = 500,
                precision: str = "float32"):
        """The run's :class:`~untwine.models.encoder.ModelEncoder` (``model``: one already loaded)."""
        from untwine.models.encoder import ModelEncoder

        if model is None:
            model = self.load_model(device)
        return ModelEncoder(model, representation, seed=seed, device=resolve_device(device), batch_size=batch_size,
                            precision=precision)

    def log(self) -> dict[str, np.ndarray]:
        return read_log(self.path / LOG_FILE)

    def metrics(self) -> dict[str, Any] | None:
        p = self.path / METRICS_FILE
        return read_json(p) if p.is_file() else None

    def __repr__(self) -> str:
        return f"<Run {self.path}: {self.config.model} on {self.config.dataset}, step {self.step}/{self.config.steps}>"


def is_run_dir(path) -> bool:
    p = Path(path)
    return (p / RUN_MARKER).is_file() and (p / CONFIG_FILE).is_file()


def open_run(path) -> Run:
    """Read the run directory ``path`` (one-line errors when it is not a run)."""
    p = Path(path)
    if not p.exists():
        raise UntwineError(f"run directory not found: {p}")
    if not p.is_dir():
        raise UntwineError(f"{p} is not a directory (expected a run directory made by `untwine train`)")
    if not is_run_dir(p):
        raise UntwineError(f"{p} is not an untwine run directory (no {RUN_MARKER} / {CONFIG_FILE})")
    info = read_json(p / RUN_MARKER)
    cfg = load_config(p / CONFIG_FILE)
    return Run(p, cfg, info.get("data", {}))


def load(run_dir, device="cpu"):
    """The trained model of ``run_dir`` in eval mode (on CPU unless ``device`` says otherwise)."""
    return open_run(run_dir).load_model(device)
