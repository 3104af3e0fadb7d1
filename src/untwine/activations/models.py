"""Activations of any model on any ground-truth dataset, written as an activations folder
(``untwine activations``).

The source is an untwine run folder (any model ``untwine train`` makes; its latest
checkpoint) or, from Python, any ``torch.nn.Module``; its layers and pooling are those of
:mod:`untwine.activations.hooks` (``codes``: the model's code exactly as ``untwine evaluate``
computes it).  ``rows`` inputs are drawn from the dataset (default: the run's own) by
``seed``: distinct flat indices when the dataset holds that many, else uniform draws.
They are rendered and run in batches of ``batch_size`` (the evaluation's 500 by default:
the same batches give the same codes bit for bit) and written in shards of ``chunk``
inputs (a multiple of ``batch_size``) by :func:`untwine.activations.writer.write_layers`:
bounded memory, resumable (running the same command again continues after the last
complete shard, bit-identical to an uninterrupted run).  The folder
(:class:`untwine.activations.layout.ActivationFolder`)::

    OUT/activations.json   command, model, dataset, layers (shape, columns), pooling, rows, factors
    OUT/layer_L/           shards + manifest.json of layer L (a module path, or codes)
    OUT/rows.npy           input item of each row; OUT/inputs.npy: the dataset index of each item
    OUT/factors.npy        the dataset's factors of each row [rows, K]
    OUT/positions.npy      with --pool positions: the spatial position of each row [rows, axes]
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.activations.hooks import CODES, ModelHooks, pooled_dim
from untwine.errors import UntwineError

#: the command written in the folder's records (and named by its error messages)
COMMAND = "untwine activations"
#: observations per forward pass: the evaluation encoder's batch (``Run.encoder``)
BATCH_SIZE = 500
#: inputs per shard (a multiple of the batch)
CHUNK = 2000


@dataclass
class Source:
    """A model to look inside: ``model`` (eval mode), what to call it, its run (or None) and dataset."""

    model: torch.nn.Module
    name: str
    run: Any
    dataset: Any
    dataset_spec: str

    def example(self) -> torch.Tensor:
        """Two observations of the dataset (the probe of :meth:`ModelHooks.shapes`)."""
        return self.dataset.observations_at(np.arange(min(2, self.dataset.num_samples)))


def _fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state (names, shapes and bytes of every tensor)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def open_source(source, dataset=None, *, device="cpu") -> Source:
    """The model and dataset of ``source`` (a run folder, a :class:`~untwine.train.run.Run` or an
    ``nn.Module``); ``dataset``: a name, path or dataset (default: the run's own)."""
    from untwine.device import resolve_device
    from untwine.train.run import Run, open_run

    dev = resolve_device(device)
    if isinstance(source, torch.nn.Module):
        if dataset is None:
            raise UntwineError("a model given as a torch.nn.Module needs a dataset")
        ds = _load(dataset)
        return Source(source.to(dev), type(source).__name__, None, ds, _spec(dataset, ds))
    run = source if isinstance(source, Run) else open_run(source)
    run.require_checkpoint()
    spec = run.config.dataset if dataset is None else dataset
    ds = _load(spec)
    want = run.info.get("observation_shape")
    have = [int(s) for s in ds.observation_shape]
    if want is not None and list(want) != have:
        raise UntwineError(f"dataset {ds.name!r} has observations of shape {tuple(have)} but the model of {run.path} "
                           f"takes {tuple(want)} (it was trained on {run.info.get('name', run.config.dataset)})")
    model = run.load_model(dev)
    return Source(model, f"{run.config.model} ({Path(run.path).resolve()})", run, ds, _spec(spec, ds))


def _load(dataset):
    """The dataset ``dataset`` names; one line for text, which no model here reads."""
    from untwine import data

    ds = data.load(dataset)
    if getattr(ds, "modality", None) == "text":
        raise UntwineError(f"dataset {ds.name!r} holds sentences, not observations a model reads; "
                           "a language model's activations are `untwine lm activations`")
    return ds


def _spec(given, ds) -> str:
    """How the report finds the dataset again: the name or (absolute) path given, else the dataset's name."""
    if not isinstance(given, (str, Path)):
        return str(getattr(ds, "name", "dataset"))
    p = Path(given).expanduser()
    return str(p.resolve()) if p.exists() else str(given)


def _hooks(src: Source, batch_size: int) -> ModelHooks:
    hooks = ModelHooks(src.model, batch_size=batch_size)
    hooks.probe(src.example(), f"observations of {src.dataset.name} (shape {tuple(src.dataset.observation_shape)})")
    return hooks


def list_layers(source, dataset=None, *, device="cpu") -> list[tuple[str, tuple[int, ...], str]]:
    """``[(layer, output shape, kind)]`` of every hookable layer (:mod:`untwine.activations.hooks`)."""
    src = source if isinstance(source, Source) else open_source(source, dataset, device=device)
    hooks = _hooks(src, BATCH_SIZE)
    kinds = {name: type(m).__name__ for name, m in hooks.modules.items()}
    return [(k, s, "the model's code (untwine evaluate's mean representation)" if k == CODES else kinds[k])
            for k, s in hooks.shapes(src.example()).items()]


def draw_inputs(dataset, rows: int, seed: int) -> np.ndarray:
    """``rows`` flat indices of ``dataset``: distinct when it holds that many, else uniform draws."""
    rng = np.random.default_rng(int(seed))
    n = int(dataset.num_samples)
    if rows <= n:
        return rng.choice(n, size=rows, replace=False).astype(np.int64)
    return dataset.sample_indices(rows, rng).astype(np.int64)


def _check_int(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise UntwineError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


def write_model_activations(out, source, *, dataset=None, layers=(CODES,), rows: int = 5000, pool: str = "mean",
                            batch_size: int = BATCH_SIZE, chunk: int = CHUNK, seed: int = 0, device="cpu",
                            progress: bool = False) -> dict:
    """Write the activations of ``layers`` of ``source`` on ``rows`` inputs of ``dataset`` under ``out``.

    See the module docstring.  Returns the summary written to ``OUT/activations.json`` plus
    ``seconds`` and ``resumed_items`` (inputs found done on disk).
    """
    from untwine.activations.hooks import POOLS
    from untwine.activations.layout import ActivationFolder
    from untwine.activations.writer import write_layers
    from untwine.files import check_output_dir
    from untwine.progress import Phases

    if pool not in POOLS:
        raise UntwineError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
    rows = _check_int("--rows", rows, 1)
    batch_size = _check_int("--batch-size", batch_size, 1)
    chunk = _check_int("--chunk", chunk, 1)
    if chunk % batch_size:
        raise UntwineError(f"--chunk {chunk} must be a multiple of --batch-size {batch_size} "
                           "(the same batches as the evaluation give the same codes)")
    t0 = time.perf_counter()
    out = check_output_dir(out)
    folder = ActivationFolder(out, command=COMMAND)
    folder.check_own()
    src = source if isinstance(source, Source) else open_source(source, dataset, device=device)
    hooks = _hooks(src, batch_size)
    example = src.example()
    layers = hooks.check_layers(list(layers), example)
    grid = hooks.grid(layers, pool, example)
    shapes = hooks.shapes(example)
    ds = src.dataset
    inputs = draw_inputs(ds, rows, seed)
    per_item = int(np.prod(grid, dtype=np.int64)) if grid else 1
    ident = {"command": COMMAND, "model": src.name, "model_sha256": _fingerprint(src.model), "dataset": src.dataset_spec,
             "pool": pool, "inputs_sha256": hashlib.sha256(inputs.tobytes()).hexdigest(), "items": rows}
    folder.check_same_run(ident)
    metas = {layer: {**ident, "layer": layer, "shape": list(shapes[layer]), "batch_size": batch_size}
             for layer in layers}
    what = f"activations of {len(layers)} layer(s) on {rows:,} {ds.name} inputs"
    with Phases(progress) as phases, phases.phase(what, total=rows) as ph:
        def compute(s: int, e: int, todo: list):
            blocks: dict[str, list] = {layer: [] for layer in todo}
            for b in range(s, e, batch_size):
                stop = min(e, b + batch_size)
                got = hooks.capture(ds.observations_at(inputs[b:stop]), todo, pool)
                for layer in todo:
                    blocks[layer].append(got[layer])
                ph.advance(stop - b)
            return ({layer: np.concatenate(v) for layer, v in blocks.items()},
                    np.repeat(np.arange(s, e, dtype=np.int64), per_item))

        resumed, item_of_row = write_layers(out, metas, compute, items=rows, chunk=chunk,
                                            started=lambda first: ph.advance(first))
    positions = None
    if grid:
        cells = np.stack(np.unravel_index(np.arange(per_item), grid), axis=1)
        positions = cells[np.arange(item_of_row.shape[0]) % per_item]
    summary = {
        "command": COMMAND, "model": src.name, "run": None if src.run is None else str(src.run.path),
        "step": None if src.run is None else int(src.run.step), "model_sha256": ident["model_sha256"],
        "dataset": src.dataset_spec, "observation_shape": [int(s) for s in ds.observation_shape],
        "layers": layers, "shapes": {k: list(shapes[k]) for k in layers},
        "dims": {k: pooled_dim(shapes[k], pool) for k in layers}, "pool": pool, "grid": list(grid) or None,
        "items": rows, "seed": int(seed), "inputs_sha256": ident["inputs_sha256"], "rows": int(item_of_row.shape[0]),
        "factors": True, "factor_names": [str(n) for n in ds.factor_names],
        "factor_sizes": [int(s) for s in ds.factor_sizes],
    }
    summary = folder.write_tables(item_of_row, summary, layers=layers, factors=ds.factors_of(inputs), inputs=inputs,
                                  positions=positions)
    return {**summary, "seconds": time.perf_counter() - t0, "resumed_items": resumed}


__all__ = ["BATCH_SIZE", "CHUNK", "COMMAND", "Source", "draw_inputs", "list_layers", "open_source",
           "write_model_activations"]
