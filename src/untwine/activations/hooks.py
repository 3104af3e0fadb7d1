"""Hooking a torch model: the activations of its modules on a batch of observations, pooled.

:class:`ModelHooks` wraps any ``torch.nn.Module``.  Its *pass* is what it runs on a batch:

* a model with an encoder (``encode_dist`` or ``encode``, every untwine model): the
  evaluation's own encoder, :class:`untwine.models.encoder.ModelEncoder` with the
  ``"mean"`` representation, so the layer :data:`CODES` is the code ``untwine evaluate``
  scores, bit for bit (same batches, same calls);
* any other module: ``model(x)``;

always in eval mode under ``torch.no_grad()``.  A *layer* is the dotted path of a module
(``encoder.features.3``, as ``model.named_modules()`` names it) that runs exactly once in
the pass and returns one tensor whose first axis is the batch; :data:`CODES` is the
model's code.  Outputs ``[n, C, *spatial]`` (convolutional maps, one or two spatial axes)
are pooled (:data:`POOLS`):

* ``mean`` / ``max``: over the spatial positions, one row ``[C]`` per input;
* ``flatten``: one row ``[C * prod(spatial)]`` per input (channel-major, ``x.reshape(n, -1)``);
* ``positions``: one row ``[C]`` per input and spatial position, positions in row-major
  order (input by input), so every layer of one run must share its spatial grid.

Vector outputs ``[n, D]`` are one row per input whatever the pooling.  An output is copied
when it is captured: a later in-place operation (``ReLU(inplace=True)``) does not alter it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from untwine.errors import UntwineError

#: the model's own code (the evaluation's mean representation)
CODES = "codes"
#: poolings of convolutional maps (module docstring)
POOLS = ("mean", "max", "flatten", "positions")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def pool_output(t: torch.Tensor, pool: str) -> torch.Tensor:
    """A captured output ``[n, D]`` or ``[n, C, *spatial]`` as float32 rows (module docstring), copied."""
    t = t.detach()
    if t.ndim <= 2 or pool == "flatten":
        out = t.reshape(t.shape[0], -1)
    elif pool == "mean":
        out = t.flatten(2).mean(2)
    elif pool == "max":
        out = t.flatten(2).amax(2)
    elif pool == "positions":
        out = t.flatten(2).transpose(1, 2).reshape(-1, t.shape[1])
    else:
        raise UntwineError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
    return out.to(device="cpu", dtype=torch.float32, copy=True)


def pooled_dim(shape: Sequence[int], pool: str) -> int:
    """Columns of a layer's rows for an output of ``shape`` (batch axis left out)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 1:
        return int(np.prod(shape, dtype=np.int64)) if shape else 1
    return int(np.prod(shape, dtype=np.int64)) if pool == "flatten" else shape[0]


def grid_of(shape: Sequence[int], pool: str) -> tuple[int, ...]:
    """The spatial grid whose positions are rows (``positions`` pooling of a map), else ``()``."""
    return tuple(int(s) for s in shape[1:]) if pool == "positions" and len(shape) >= 2 else ()


class ModelHooks:
    """The layers of ``model`` and their pooled activations on batches (module docstring)."""

    def __init__(self, model: torch.nn.Module, *, device=None, batch_size: int = 500) -> None:
        if not isinstance(model, torch.nn.Module):
            raise UntwineError(f"expected a torch.nn.Module, got {type(model).__name__}")
        from untwine.models.encoder import ModelEncoder, model_device

        self.model = model
        self.device = torch.device(device) if device is not None else model_device(model)
        self.encoder = None
        if callable(getattr(model, "encode_dist", None)) or callable(getattr(model, "encode", None)):
            self.encoder = ModelEncoder(model, "mean", device=self.device, batch_size=batch_size)
        self.modules = {name: m for name, m in model.named_modules() if name}
        self._shapes: dict[str, tuple[int, ...]] | None = None

    # -- one pass ----------------------------------------------------------------------
    def _run(self, x, hooked: dict[str, torch.nn.Module], keep) -> torch.Tensor | None:
        """Run the pass on ``x`` with ``keep(name, output)`` hooked on ``hooked``; returns the codes (or None)."""
        from untwine.models.encoder import as_batch

        handles = [m.register_forward_hook(lambda _m, _i, out, name=name: keep(name, out)) for name, m in hooked.items()]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                if self.encoder is not None:
                    return self.encoder.batch(x)[0]
                self.model(as_batch(x).to(self.device))
                return None
        finally:
            self.model.train(was_training)
            for h in handles:
                h.remove()

    def shapes(self, example) -> dict[str, tuple[int, ...]]:
        """``{layer: output shape without the batch axis}`` of every layer (module docstring), in the
        order the pass runs them, :data:`CODES` first; ``example``: at least two observations."""
        if self._shapes is not None:
            return self._shapes
        n = len(example)
        seen: dict[str, list] = {}
        codes = self._run(example, self.modules, lambda name, out: seen.setdefault(name, []).append(out))
        shapes: dict[str, tuple[int, ...]] = {}
        if codes is not None and codes.ndim == 2 and codes.shape[0] == n:
            shapes[CODES] = tuple(codes.shape[1:])
        for name, outs in seen.items():
            out = outs[0]
            if len(outs) == 1 and isinstance(out, torch.Tensor) and out.ndim >= 2 and out.shape[0] == n \
                    and out.is_floating_point():
                shapes[name] = tuple(int(s) for s in out.shape[1:])
        self._shapes = shapes
        return shapes

    def check_layers(self, layers, example) -> list[str]:
        """``layers`` checked against :meth:`shapes`: one line listing the real ones for an unknown one."""
        have = self.shapes(example)
        out = [str(layer).strip() for layer in layers if str(layer).strip()]
        if not out:
            raise UntwineError("--layers: give at least one layer (see --list-layers)")
        if len(set(out)) != len(out):
            raise UntwineError(f"--layers: {', '.join(out)} repeats a layer")
        for layer in out:
            if layer not in have:
                why = ("the model has no encoder, so no code; " if layer == CODES
                       else "it does not run once per input in the model's pass; " if layer in self.modules else "")
                raise UntwineError(f"unknown layer {layer!r}: {why}the layers are {', '.join(have)}")
        return out

    def grid(self, layers, pool: str, example) -> tuple[int, ...]:
        """The spatial grid every layer's rows share (``positions`` pooling); one line when they differ."""
        have = self.shapes(example)
        grids = {layer: grid_of(have[layer], pool) for layer in layers}
        if len(set(grids.values())) > 1:
            desc = ", ".join(f"{k} {'x'.join(map(str, g)) or 'no grid (a vector)'}" for k, g in grids.items())
            raise UntwineError(f"--pool positions: the layers have different spatial grids ({desc}); "
                               "write them to separate folders")
        return next(iter(grids.values()))

    def capture(self, x, layers: list[str], pool: str) -> dict[str, np.ndarray]:
        """``{layer: float32 [rows, dim]}`` of the batch ``x`` (rows: inputs, or inputs x positions)."""
        got: dict[str, torch.Tensor] = {}

        def keep(name, out):
            got[name] = pool_output(out, pool)

        codes = self._run(x, {k: self.modules[k] for k in layers if k != CODES}, keep)
        if CODES in layers:
            got[CODES] = codes.detach().to(device="cpu", dtype=torch.float32, copy=True)
        return {k: got[k].numpy() for k in layers}

    def probe(self, example, what: str) -> None:
        """Run the pass once on ``example``; a failure (observations that do not fit the model) is one line."""
        try:
            self.shapes(example)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise UntwineError(f"{what} do not fit the model ({_first_line(exc)})") from None


__all__ = ["CODES", "POOLS", "ModelHooks", "grid_of", "pool_output", "pooled_dim"]
