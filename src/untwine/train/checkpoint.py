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
therefore leaves ``latest.json`` pointing at a complete checkpoint.

Checkpoints verify themselves: ``state.json`` holds the SHA-256 of
``model.safetensors`` and ``optimizers.pt``.  :func:`latest_checkpoint` returns the
newest *intact* checkpoint: when the one ``latest.json`` names is damaged (a file
missing, truncated or changed), it says so in one warning line and falls back to the
newest intact step directory; when ``latest.json`` itself is missing or unreadable, it
looks for the newest intact step directory instead of starting over.  After a new
checkpoint is written, the ``keep`` newest intact step directories stay and the rest
(older ones, and damaged ones) are deleted, so an intact checkpoint is never deleted
while a damaged one is the newest.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from untwine.errors import UntwineError, UntwineWarning
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(
    run_dir,
    step: int,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    *,
    keep: int = 2,
) -> Checkpoint:
    """Write a checkpoint for ``step`` atomically (with the checksums of its files) and point
    ``latest.json`` at it."""
    from safetensors.torch import save as st_save

    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:09d}"
    final = root / name
    tmp = temp_name(final)
    tmp.mkdir()  # usual permissions (mkdtemp would make it 0700)
    try:
        weights = st_save(_state_dict_for_safetensors(model), metadata={"step": str(step)})
        buf = io.BytesIO()
        torch.save({k: o.state_dict() for k, o in optimizers.items()}, buf)
        opts = buf.getvalue()
        write_synced(tmp / WEIGHTS, weights)
        write_synced(tmp / OPTIMIZERS, opts)
        full_state = dict(state, step=int(step), checksums={WEIGHTS: sha256(weights), OPTIMIZERS: sha256(opts)})
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
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)
    kept = 0
    for p in dirs:
        if p.name == current or (kept < max(1, keep) and read_checkpoint(p)[0] is not None):
            kept += 1
            continue
        shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of interrupted writes
        if p.name.startswith(".step-") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{POINTER}.") and p.name.endswith(".tmp"):
            p.unlink(missing_ok=True)


def read_checkpoint(path: Path) -> tuple[Checkpoint | None, str | None]:
    """``(checkpoint, None)`` when the step directory ``path`` is intact, else ``(None, why)``.

    Intact: ``state.json`` reads, ``model.safetensors`` and ``optimizers.pt`` exist and, when
    the state holds checksums (every checkpoint since they were introduced), match them.
    """
    try:
        state = json.loads((path / STATE).read_text())
        step = int(state["step"])
    except FileNotFoundError:
        return None, f"no {STATE}"
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{STATE} is unreadable"
    sums = state.get("checksums") or {}
    for name in (WEIGHTS, OPTIMIZERS):
        f = path / name
        if not f.is_file():
            if name == OPTIMIZERS and not sums:
                continue  # written before checksums, without optimizer states: weights only
            return None, f"{name} is missing"
        if name in sums:
            try:
                digest = sha256(f.read_bytes())
            except OSError as exc:
                return None, f"{name} cannot be read ({exc.strerror or exc})"
            if digest != sums[name]:
                return None, f"{name} does not match its checksum (truncated or changed)"
    return Checkpoint(path, step, state), None


def latest_checkpoint(run_dir, *, warn: bool = True) -> Checkpoint | None:
    """The newest intact checkpoint of a run, or None when it has none (see the module docstring).

    With ``warn``, a damaged or missing pointer target is reported as one
    :class:`~untwine.errors.UntwineWarning` line naming the checkpoint used instead.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return None
    pointer = root / POINTER
    named = None
    problem = None
    if pointer.is_file():
        try:
            named = root / str(json.loads(pointer.read_text())["dir"])
        except (OSError, ValueError, KeyError, TypeError):
            problem = f"{pointer} is unreadable"
    if named is not None:
        ckpt, why = read_checkpoint(named)
        if ckpt is not None:
            return ckpt
        problem = f"checkpoint {named.name} is damaged ({why})"
    steps = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")), reverse=True)
    for p in steps:
        if p == named:
            continue
        ckpt, _ = read_checkpoint(p)
        if ckpt is not None:
            if warn:
                why = problem or f"{POINTER} is missing"
                warnings.warn(UntwineWarning(f"{run_dir}: {why}; using the newest intact checkpoint, step {ckpt.step}"), stacklevel=2)
            return ckpt
    if problem is not None:
        raise UntwineError(f"{run_dir}: {problem}, and no intact checkpoint is left (train it again with --overwrite)")
    return None


def load_weights(model: torch.nn.Module, ckpt: Checkpoint, *, device="cpu") -> None:
    """Load a checkpoint's weights into ``model`` (strict: every key must match)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(ckpt.weights), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise UntwineError(f"checkpoint {ckpt.path}: cannot read {WEIGHTS} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise UntwineError(
            f"checkpoint {ckpt.path} does not fit the model "
            f"(missing {len(missing)} keys, e.g. {missing[:2]}; unexpected {len(unexpected)}, e.g. {unexpected[:2]})"
        )


def load_optimizers(optimizers: dict[str, torch.optim.Optimizer], ckpt: Checkpoint, *, device="cpu") -> None:
    try:
        states = torch.load(ckpt.optimizers, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged pickle/zip
        raise UntwineError(f"checkpoint {ckpt.path}: cannot read {OPTIMIZERS} ({type(exc).__name__})") from None
    if set(states) != set(optimizers):
        raise UntwineError(
            f"checkpoint {ckpt.path} has optimizers {sorted(states)} but the model uses {sorted(optimizers)}"
        )
    for k, opt in optimizers.items():
        opt.load_state_dict(states[k])
