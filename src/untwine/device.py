"""The one place a ``--device`` / ``device=`` value becomes a :class:`torch.device`.

``auto`` (or None) is CUDA when present, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` (or a
:class:`torch.device`) are taken as given.  Asking for CUDA on a machine without it, or for a
name torch does not know, is one :class:`~untwine.errors.UntwineError` line.
"""

from __future__ import annotations

import torch

from untwine.errors import UntwineError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device ``device`` names (see the module docstring)."""
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device or "auto").strip().lower()
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except (RuntimeError, TypeError):
            raise UntwineError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UntwineError(f"device {device} requested but CUDA is not available (use --device cpu or auto)")
    return dev
