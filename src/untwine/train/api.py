"""Resolving a run config from its layers, and the ``train`` entry point shared by CLI and Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from untwine.errors import UntwineError
from untwine.train.config import RunConfig, apply_mapping, parse_overrides, read_config_file
from untwine.train.run import Run, is_run_dir, open_run


def _known_hparams(model: str) -> list[str]:
    from untwine import models

    return list(models.model_hparams(model))  # unknown name -> UntwineError listing the names


def resolve_config(
    model: str | None = None,
    dataset: str | None = None,
    *,
    config=None,
    overrides: Mapping[str, Any] | list[str] | None = None,
    hparams: Mapping[str, Any] | None = None,
    base: RunConfig | None = None,
    **fields: Any,
) -> RunConfig:
    """Build a :class:`RunConfig` from, in increasing precedence: ``base`` (defaults or a
    saved run's config), the YAML ``config`` file (path or mapping), ``model``/``dataset``
    and ``fields`` given explicitly (None = not given), ``hparams``, then ``overrides``
    (``--set`` strings ``"key=value"`` or a mapping)."""
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config is not None:
        data = dict(config) if isinstance(config, Mapping) else read_config_file(config)
        layers.append((f"config file {config}" if not isinstance(config, Mapping) else "config", data))
    explicit = {k: v for k, v in dict(fields, model=model, dataset=dataset).items() if v is not None}
    if explicit:
        layers.append(("argument", explicit))
    if hparams:
        layers.append(("hparams", {"hparams": dict(hparams)}))
    if overrides:
        ov = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
        layers.append(("--set", ov))

    cfg = RunConfig.from_dict(base.to_dict(), source="saved config") if base is not None else RunConfig()
    # the model name decides which bare keys are hyper-parameters: find it first
    name = cfg.model
    for _, data in layers:
        if data.get("model") is not None:
            name = str(data["model"])
    if base is not None and base.model and name != base.model:
        raise UntwineError(f"the run holds model {base.model!r}, not {name!r}")
    if not name:
        raise UntwineError("no model given (name one, e.g. `untwine train beta_vae --dataset dsprites`)")
    known = _known_hparams(name)
    cfg.model = name
    for source, data in layers:
        apply_mapping(cfg, data, source=source, known_hparams=known)
    return cfg.validate()


def train(
    model: str | None = None,
    dataset=None,
    *,
    steps: int | None = None,
    out=None,
    seed: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    hparams: Mapping[str, Any] | None = None,
    set: Mapping[str, Any] | list[str] | None = None,  # noqa: A002 - mirrors --set
    config=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    verbose: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    **fields: Any,
) -> Run:
    """Train a disentangling model and return its :class:`~untwine.train.Run`.

    ``model`` is a registered name (``untwine.models.MODELS``), ``dataset`` a name,
    a file path or a :class:`~untwine.data.GroundTruthDataset`.  ``hparams`` /
    ``set`` give hyper-parameters and config overrides, ``config`` a YAML file.
    With ``resume=True`` and an existing run in ``out``, the saved config is the
    base (so ``train(out=RUN, resume=True, steps=N)`` continues it to N steps) and
    any change to a setting that affects the weights is refused.  The returned
    run's ``.model`` is the trained model in eval mode.
    Other config fields (``checkpoint_every``, ``log_every``, ``num_latents`` ...)
    may be passed as keywords.
    """
    ds_obj = None
    ds_name = None
    if dataset is not None and not isinstance(dataset, (str, Path)):
        ds_obj = dataset
        ds_name = str(getattr(dataset, "name", "dataset"))
    elif dataset is not None:
        ds_name = str(dataset)
    base = None
    if resume and out is not None and is_run_dir(out):
        base = open_run(out).config
    cfg = resolve_config(
        model,
        ds_name,
        config=config,
        overrides=set,
        hparams=hparams,
        base=base,
        steps=steps,
        seed=seed,
        device=device,
        batch_size=batch_size,
        **fields,
    )
    from untwine.train.trainer import run_training

    return run_training(
        cfg, out=out, dataset=ds_obj, resume=resume, overwrite=overwrite, progress=progress, verbose=verbose, callback=callback
    )
