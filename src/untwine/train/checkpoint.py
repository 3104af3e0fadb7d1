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
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.errors import UntwineError

CHECKPOINT_DIR = "checkpoints"
POINTER = "latest.json"
WEIGHTS = "model.safetensors"
OPTIMIZERS = "optimizers.pt"
STATE = "state.json"


# -- atomic file helpers --------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a synced temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # like mkstemp, but with the usual permissions (0666 & ~umask) instead of 0600
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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
    tmp = root / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # usual permissions (mkdtemp would make it 0700)
    try:
        _write_synced(tmp / WEIGHTS, st_save(_state_dict_for_safetensors(model), metadata={"step": str(step)}))
        opt_path = tmp / OPTIMIZERS
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, opt_path)
        with open(opt_path, "rb+") as fh:
            os.fsync(fh.fileno())
        full_state = dict(state, step=int(step))
        _write_synced(tmp / STATE, json.dumps(full_state, indent=1).encode("utf-8"))
        _fsync_dir(tmp)
        if final.exists():  # a stale copy of the same step (e.g. after a crash); replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
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
