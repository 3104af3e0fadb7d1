"""Atomic checkpoints of a training run.

Layout inside a run directory::

    checkpoints/
        step-000001000/
            model.safetensors      model weights (and buffers)
            optimizers.pt          {name: optimizer.state_dict()} (torch.save)
            state.json             step, RNG states, config hash, logger state
        latest.json                {"step": 1000, "dir": "step-000001000"}

A checkpoint is written into a fresh temporary directory (every file fsynced),
which is renamed to its final ``step-*`` name; only then is ``latest.json``
replaced atomically (temp file, fsync, ``os.replace``).  A crash at any moment
therefore leaves ``latest.json`` pointing at a complete checkpoint.  Older step
directories beyond ``keep`` are deleted after the pointer moves.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.files import atomic_write_text, fsync_dir, temp_name, write_synced

CHECKPOINT_DIR = "checkpoints"
POINTER = "latest.json"
WEIGHTS = "model.safetensors"
OPTIMIZERS = "optimizers.pt"
STATE = "state.json"


# -- RNG state (de)serialisation --------------------------------------------------
def _tensor_b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _b64_tensor(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def capture_rng_state() -> dict[str, Any]:
    """Torch (CPU and CUDA) and numpy global RNG states, JSON-serialisable."""
    state: dict[str, Any] = {"torch": _tensor_b64(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_tensor_b64(s) for s in torch.cuda.get_rng_state_all()]
    np_state = np.random.get_state()
    state["numpy"] = {
        "kind": np_state[0],
        "keys": np_state[1].tolist(),
        "pos": int(np_state[2]),
        "has_gauss": int(np_state[3]),
        "cached_gaussian": float(np_state[4]),
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(_b64_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [_b64_tensor(s) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    npst = state.get("numpy")
    if npst:
        np.random.set_state(
            (npst["kind"], np.asarray(npst["keys"], dtype=np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
        )


# -- checkpoints ------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A complete checkpoint on disk."""

    path: Path
    step: int
    state: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def optimizers(self) -> Path:
        return self.path / OPTIMIZERS


def _state_dict_for_safetensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    # safetensors refuses shared storage and non-contiguous tensors: clone them apart
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save_checkpoint(
    run_dir,
    step: int,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    *,
    keep: int = 2,
) -> Checkpoint:
    """Write a checkpoint for ``step`` atomically and point ``latest.json`` at it."""
    from safetensors.torch import save as st_save

    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:09d}"
    final = root / name
    tmp = temp_name(final)
    tmp.mkdir()  # usual permissions (mkdtemp would make it 0700)
    try:
        write_synced(tmp / WEIGHTS, st_save(_state_dict_for_safetensors(model), metadata={"step": str(step)}))
        opt_path = tmp / OPTIMIZERS
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, opt_path)
        with open(opt_path, "rb+") as fh:
            os.fsync(fh.fileno())
        full_state = dict(state, step=int(step))
        write_synced(tmp / STATE, json.dumps(full_state, indent=1).encode("utf-8"))
        fsync_dir(tmp)
        if final.exists():  # a stale copy of the same step (e.g. after a crash); replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / POINTER, json.dumps({"step": int(step), "dir": name}) + "\n")
    _prune(root, keep=keep, current=name)
    return Checkpoint(final, int(step), full_state)


def _prune(root: Path, *, keep: int, current: str) -> None:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for p in dirs[: max(0, len(dirs) - max(1, keep))]:
        if p.name != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of interrupted writes
        if p.name.startswith(".step-") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir) -> Checkpoint | None:
    """The checkpoint ``latest.json`` points at, or None when the run has none."""
    root = Path(run_dir) / CHECKPOINT_DIR
    pointer = root / POINTER
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text())
        path = root / info["dir"]
        state = json.loads((path / STATE).read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UntwineError(f"{run_dir}: checkpoint pointer {pointer} is unreadable ({type(exc).__name__})") from None
    if not (path / WEIGHTS).is_file():
        raise UntwineError(f"{run_dir}: checkpoint {path.name} has no {WEIGHTS}")
    return Checkpoint(path, int(state["step"]), state)


def load_weights(model: torch.nn.Module, ckpt: Checkpoint, *, device="cpu") -> None:
    """Load a checkpoint's weights into ``model`` (strict: every key must match)."""
    from safetensors.torch import load_file

    sd = load_file(str(ckpt.weights), device=str(device))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UntwineError(
            f"checkpoint {ckpt.path} does not fit the model "
            f"(missing {len(missing)} keys, e.g. {missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})"
        )


def load_optimizers(optimizers: dict[str, torch.optim.Optimizer], ckpt: Checkpoint, *, device="cpu") -> None:
    states = torch.load(ckpt.optimizers, map_location=device, weights_only=True)
    if set(states) != set(optimizers):
        raise UntwineError(
            f"checkpoint {ckpt.path} has optimizers {sorted(states)} but the model uses {sorted(optimizers)}"
        )
    for k, opt in optimizers.items():
        opt.load_state_dict(states[k])
