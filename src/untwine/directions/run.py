"""``untwine directions``: find directions in a run's generator with one method or all, and score them.

:func:`find_directions` loads the run's model and dataset, gets the dataset's oracle
(trained and cached on first use), runs the method(s) and writes to ``out`` (default
``RUN_DIR/directions``):

* one method: ``directions.npy`` (``[K, D]``, unit rows, in the method's order),
  ``scores.json`` and ``traversal.png`` (one row per direction, from one prior latent);
* ``method="all"``: the same three files per method in ``out/<method>/``, and
  ``out/scores.json`` comparing them all.

``scores.json`` always has the same layout, ``{"run", "model", "dataset", "num", "oracle",
"settings", "methods": {name: {...}}}``; each method's entry holds the scores of
:func:`untwine.directions.scoring.score_effects`, the effect matrix, ``seconds`` (the
method's own time, scoring excluded), the first and last losses of learnt methods and the
method's own numbers.  In a comparison a method that cannot run on this generator (say, no
linear first layer) gets ``{"error": "..."}`` instead; asked alone it is one error line.
The run's report (``untwine report``) shows ``RUN_DIR/directions/scores.json`` when present.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.directions.base import METHODS, Found, Generator, check_num
from untwine.directions.methods import get_method
from untwine.directions.report import COLUMNS
from untwine.directions.oracle import DEFAULT_STEPS as ORACLE_STEPS
from untwine.directions.oracle import check_dataset, check_steps, get_oracle
from untwine.directions.scoring import (
    DEFAULT_RANGE,
    DEFAULT_SEEDS,
    DEFAULT_STEPS,
    check_scoring,
    effect_matrix,
    score_effects,
)
from untwine._checks import check_seed
from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes, check_output_dir, read_json, write_json

DIRECTIONS_DIR = "directions"
SCORES_FILE = "scores.json"
#: the columns of the comparison table, in order
TABLE_COLUMNS = COLUMNS  # the comparison table's columns, as the report shows them


def _loss_summary(losses: list[float]) -> dict[str, float]:
    if not losses:
        return {}
    w = max(1, len(losses) // 10)
    return {"loss_first": float(np.mean(losses[:w])), "loss_last": float(np.mean(losses[-w:])),
            "train_steps": len(losses)}


def _save_npy(path: Path, array: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32))
    atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def save_direction_traversal(gen: Generator, directions: np.ndarray, path, *, labels=None, title: str = "",
                             steps: int = 7, range_scale: float = DEFAULT_RANGE) -> Path:
    """A picture of the directions: one row each, sweeping one prior latent over ``+-range_scale * spread``."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from untwine.viz._images import to_uint8
    from untwine.viz.traversal import Traversal, traversal_figure

    z = gen.sample(1)[0]
    r = range_scale * gen.spread
    t = np.linspace(-r, r, steps)
    dirs = np.asarray(directions, dtype=np.float32)
    lat = z.numpy()[None, None, :] + t[None, :, None].astype(np.float32) * dirs[:, None, :]
    imgs = gen.decode(torch.from_numpy(lat.reshape(-1, gen.dim).astype(np.float32))).float().cpu()
    imgs = to_uint8(imgs)
    imgs = imgs.reshape(len(dirs), steps, *imgs.shape[1:])
    labels = labels or [f"d{i}" for i in range(len(dirs))]
    trav = Traversal(images=imgs, latents=list(range(len(dirs))), values=np.tile(t, (len(dirs), 1)), labels=labels)
    # rendered in memory and written atomically: no half-written picture, no staging file after a kill
    buf = io.BytesIO()
    fig = traversal_figure(trav, title=title)
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def score_directions(gen: Generator, directions, oracle, *, num_seeds: int = DEFAULT_SEEDS, steps: int = DEFAULT_STEPS,
                     range_scale: float = DEFAULT_RANGE) -> dict[str, Any]:
    """Scores and effect matrix of ``directions`` ``[K, D]`` on generator ``gen`` (any directions, e.g. your own)."""
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != gen.dim:
        raise UntwineError(f"directions must be [K, {gen.dim}], got shape {d.shape}")
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    e = effect_matrix(gen, d, oracle, num_seeds=num_seeds, steps=steps, range_scale=range_scale)
    out = score_effects(e, oracle.factor_names)
    out["effects"] = e.tolist()
    return out


def check_method_options(name: str, opts) -> None:
    """One error line when a method's ``steps`` option (``--train-steps``) is not a positive integer."""
    steps = (opts or {}).get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise UntwineError(f"--train-steps must be a positive integer (untrained directions are not scored), "
                           f"got {steps!r}")


#: what an output folder of `untwine directions` holds (plus one folder per method for --method all)
OWN_FILES = ("directions.npy", SCORES_FILE, "traversal.png")


def check_out(out: Path, subfolders) -> None:
    """Before any work: ``out`` can be written and holds nothing but an earlier directions output."""
    check_output_dir(out)
    if not out.is_dir():
        return
    for p in out.iterdir():
        own = p.name in OWN_FILES or (p.name.startswith(".") and p.name.endswith(".tmp"))
        own = own or (p.is_dir() and (p.name in METHODS or p.name in subfolders))
        if not own:
            raise UntwineError(f"--out {out} holds {p.name}, which `untwine directions` did not write; "
                               "choose a new or empty folder")
    old = out / SCORES_FILE
    if old.is_file():
        data = read_json(old, what="directions scores")
        if not isinstance(data, dict) or not isinstance(data.get("methods"), dict):
            raise UntwineError(f"--out {out}: its {SCORES_FILE} is not a directions scores file; "
                               "choose a new or empty folder")
        for p in (out / SCORES_FILE, out / "directions.npy", out / "traversal.png"):
            if p.is_dir():
                raise UntwineError(f"--out {out}: {p.name} is a folder; choose a new or empty folder")


def run_method(name: str, gen: Generator, num: int, oracle, *, score_seed: int, options: dict | None = None,
               scoring: dict | None = None, run_steps: int | None = None) -> tuple[Found, dict[str, Any], Generator]:
    """Run method ``name`` and score its directions; ``(found, entry for scores.json, generator scored)``."""
    method = get_method(name)
    num_factors = int(sum(1 for s in gen.dataset.factor_sizes if s > 1)) if gen.dataset is not None else None
    num = check_num(gen, num, method, num_factors)
    if method.needs_layer:
        gen.layer()
    check_method_options(name, options)
    opts = dict(options or {})
    if name == "householder" and run_steps is not None:
        opts.setdefault("run_steps", run_steps)
    t0 = time.perf_counter()
    found = method.fn(gen, num, **opts)
    seconds = time.perf_counter() - t0
    dirs = np.asarray(found.directions, dtype=np.float64)
    if dirs.shape != (num, gen.dim):
        raise UntwineError(f"method {name} returned directions of shape {dirs.shape}, expected {(num, gen.dim)}")
    scored = Generator(found.model, gen.dataset, seed=score_seed, device=gen.device) if found.model is not None \
        else Generator(gen.model, gen.dataset, seed=score_seed, device=gen.device)
    entry = score_directions(scored, dirs, oracle, **(scoring or {}))
    entry.update(seconds=seconds, num=num, baseline=method.baseline, **_loss_summary(found.losses))
    if found.info:
        entry["info"] = found.info
    if found.model is not None:
        entry["scored_on"] = "the fine-tuned generator"
    return found, entry, scored


def find_directions(run_dir, method: str = "sefa", num: int | None = None, out=None, *, seed: int = 0,
                    device: str = "auto", num_seeds: int = DEFAULT_SEEDS, steps: int = DEFAULT_STEPS,
                    range_scale: float = DEFAULT_RANGE, oracle_steps: int = ORACLE_STEPS,
                    options: dict[str, dict] | None = None, dataset=None,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Find ``num`` directions (default: min(10, latent dimensions)) in the generator of ``run_dir``
    with ``method`` (a name of :data:`METHODS`, or ``"all"``), score them and write them to ``out``
    (see the module docstring).  ``options`` maps a method name to its keyword options
    (e.g. ``{"voynov": {"steps": 200}}``).  Returns the contents of ``scores.json``."""
    from untwine.device import resolve_device
    from untwine.train.run import open_run

    names = list(METHODS) if method == "all" else [get_method(method).name]
    check_seed(seed)
    check_scoring(num_seeds, steps, range_scale)
    check_steps(oracle_steps)
    for name, opts in (options or {}).items():
        check_method_options(name, opts)
    run = open_run(run_dir)
    run.require_checkpoint()
    dataset = run.dataset(dataset)
    check_dataset(dataset)
    dev = resolve_device(device)
    model = run.load_model(dev)
    for p in model.parameters():
        p.requires_grad_(False)
    probe = Generator(model, dataset, seed=seed, device=dev)
    if num is None:
        num = min(10, probe.dim)
    num_factors = int(sum(1 for s in dataset.factor_sizes if s > 1))
    if method != "all":
        check_num(probe, num, get_method(method), num_factors)
        if get_method(method).needs_layer:
            probe.layer()
    else:
        check_num(probe, num, METHODS["sefa"])
    out = Path(out) if out is not None else Path(run.path) / DIRECTIONS_DIR
    check_out(out, names if method == "all" else [])
    oracle = get_oracle(dataset, steps=oracle_steps, device=dev, log=log)
    scoring = {"num_seeds": num_seeds, "steps": steps, "range_scale": range_scale}
    result: dict[str, Any] = {
        "run": str(Path(run.path).resolve()), "model": run.config.model, "dataset": run.config.dataset,
        "step": run.step, "num": int(num), "latent_dim": probe.dim, "prior": probe.kind, "spread": probe.spread,
        "oracle": oracle.summary(), "settings": {**scoring, "seed": seed}, "methods": {},
    }
    for name in names:
        k = min(num, num_factors) if (method == "all" and METHODS[name].per_factor) else num
        if log is not None:
            log(f"directions: {name} ({k} directions)")
        gen = Generator(model, dataset, seed=seed, device=dev)
        try:
            found, entry, scored = run_method(name, gen, k, oracle, score_seed=seed + 1, options=(options or {}).get(name),
                                              scoring=scoring, run_steps=run.config.steps)
        except UntwineError as exc:
            if method != "all":
                raise
            result["methods"][name] = {"error": str(exc)}
            continue
        where = out / name if method == "all" else out
        _save_npy(where / "directions.npy", found.directions)
        labels = [f"d{i} ~ {m}" if m else f"d{i}" for i, m in enumerate(entry["matches"])]
        save_direction_traversal(scored, found.directions, where / "traversal.png", labels=labels,
                                 title=f"{run.config.model}: {name} directions", range_scale=range_scale)
        result["methods"][name] = entry
        if method == "all":
            write_json(where / SCORES_FILE, {**result, "methods": {name: entry}})
    write_json(out / SCORES_FILE, result)
    return result


def comparison_rows(result: dict[str, Any]) -> list[list[Any]]:
    """The comparison table of a ``scores.json``: one row per method, :data:`TABLE_COLUMNS`."""
    rows = []
    for name, entry in result.get("methods", {}).items():
        if "error" in entry:
            rows.append([name] + ["-"] * len(TABLE_COLUMNS))
        else:
            rows.append([name] + [entry.get(c) for c in TABLE_COLUMNS])
    return rows


def format_table(result: dict[str, Any]) -> str:
    """The comparison table as plain text."""
    head = ["method", *TABLE_COLUMNS]
    lines = [" ".join(f"{h:>15}" for h in head)]
    for row in comparison_rows(result):
        cells = [f"{row[0]:>15}"] + [f"{v:>15.3f}" if isinstance(v, float) else f"{v!s:>15}" for v in row[1:]]
        lines.append(" ".join(cells))
    for name, entry in result.get("methods", {}).items():
        if "error" in entry:
            lines.append(f"{name}: {entry['error']}")
    return "\n".join(lines)
