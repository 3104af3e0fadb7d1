"""The output folder of ``untwine sae train/sweep``: what it may hold, its checkpoint, its lock.

A folder holds one SAE run: a single SAE (``cfg.json``, ``sae_weights.safetensors``,
``training.json``) or a sweep (``sweep.json`` and one such folder per member), the
run's ``checkpoint.pt``, and what ``untwine sae evaluate`` / ``untwine report`` add
(``evaluation.json``, ``report.html``).  :func:`check_out_folder` refuses a folder that
holds anything else (a VAE or GAN run, activations, notes), even with ``--overwrite``:
an SAE written there would hide that run from ``untwine report``.  :func:`clear_run`
removes an SAE run for ``--overwrite``, old sweep members included.

The checkpoint (:func:`save_checkpoint`, one file written atomically) records a
fingerprint of the training data (:func:`untwine.sae.data.fingerprint`);
:func:`load_checkpoint` refuses to continue on other data.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from untwine.errors import UntwineError
from untwine.files import LOCK_FILE, atomic_write_bytes, remove_stray_temporaries
from untwine.sae.io import CFG, WEIGHTS

CHECKPOINT = "checkpoint.pt"
TRAINING = "training.json"
SWEEP = "sweep.json"
#: files of one SAE folder (``evaluation.json`` and ``report.html`` come from evaluate / report)
SAE_FILES = (CFG, WEIGHTS, TRAINING, "evaluation.json", "report.html")
#: files of a run folder beside its SAE files
RUN_FILES = (CHECKPOINT, SWEEP, LOCK_FILE)


def _is_sae_member(p: Path) -> bool:
    """A folder holding only SAE files (a sweep member; hidden temporaries allowed)."""
    return p.is_dir() and any(p.iterdir()) and all(q.name in SAE_FILES or q.name.startswith(".") for q in p.iterdir())


def check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` that is a file or a folder holding something other than an SAE run."""
    if out.exists() and not out.is_dir():
        raise UntwineError(f"--out {out} exists and is not a directory")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir()
                     if not (p.name.startswith(".") or p.name in SAE_FILES + RUN_FILES or _is_sae_member(p)))
    if foreign:
        raise UntwineError(f"--out {out} holds files that are not an SAE run ({', '.join(foreign[:3])}); "
                           "choose another --out (--overwrite replaces SAE runs only)")


def holds_run(out: Path, dirs: list[Path]) -> bool:
    return (out / CHECKPOINT).is_file() or (out / SWEEP).is_file() or any(
        (d / CFG).is_file() or (d / WEIGHTS).is_file() for d in dirs)


def clear_run(out: Path) -> None:
    """Delete the SAE run in ``out`` (``--overwrite``): its checkpoint, SAE files and every sweep member."""
    for p in list(out.iterdir()) if out.is_dir() else []:
        if p.name in SAE_FILES or p.name in (CHECKPOINT, SWEEP):
            p.unlink()
        elif _is_sae_member(p):
            shutil.rmtree(p)


def tidy(out: Path, dirs: list[Path]) -> None:
    """Remove the temporary files of writes a kill interrupted (the run folder and its members)."""
    for d in {out, *dirs}:
        remove_stray_temporaries(d)


def save_checkpoint(path: Path, step: int, config: dict, modules: list, optims: list, log: list[dict], data: dict) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "step": int(step),
            "config": json.dumps(config, sort_keys=True),
            "modules": [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in modules],
            "optims": [o.state_dict() for o in optims],
            "log": json.dumps(log),
            "data": json.dumps(data, sort_keys=True),
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, data: dict) -> dict[str, Any]:
    """The checkpoint at ``path``; one error line when it cannot be read or was trained on other data."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types; report any as one line
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UntwineError(f"{path}: cannot read the checkpoint ({why})") from None
    if not isinstance(state, dict) or not {"step", "config", "modules", "optims", "log"} <= set(state):
        raise UntwineError(f"{path}: not an SAE training checkpoint")
    if "data" in state:  # checkpoints from before the fingerprint have none
        saved = json.loads(state["data"])
        same = all(saved.get(k) == data.get(k) for k in ("rows", "dim", "sample_sha256"))
        if not same:
            raise UntwineError(
                f"{path.parent} was trained on other activations ({saved.get('path')}: {saved.get('rows')} x "
                f"{saved.get('dim')}), not {data['path']} ({data['rows']} x {data['dim']}, other values); "
                "resume with the same activations or use --overwrite")
    return state
