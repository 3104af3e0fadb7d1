"""What to train: :class:`SAESpec` (one SAE) and :func:`sweep_specs` (a sweep's grid)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from untwine.errors import UntwineError
from untwine.sae.registry import get_architecture


@dataclass
class SAESpec:
    """One SAE to train: architecture, number of latents and hyper-parameters (``k`` ...)."""

    arch: str
    latents: int
    hparams: dict[str, Any] = field(default_factory=dict)
    lr: float | None = None
    name: str | None = None

    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.arch, f"w{self.latents}"] + [f"{k}{v}" for k, v in sorted(self.hparams.items()) if v is not None]
        return "-".join(str(p).replace(".", "p") for p in parts)


def sweep_specs(archs: list[str], widths: list[int], ks: list[int | None], hparams: dict[str, Any], lr: float | None) -> list[SAESpec]:
    """Every combination of architecture x width x k (k ignored where the architecture has none)."""
    known = {"center_input"} | {key for a in archs for key in get_architecture(a).hparam_defaults}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise UntwineError(f"no architecture of the sweep ({', '.join(archs)}) has a hyper-parameter {unknown[0]!r}")
    specs, seen = [], set()
    for a in archs:
        cls = get_architecture(a)
        for w in widths:
            for k in ks:
                hp = {key: v for key, v in hparams.items() if key in cls.hparam_defaults or key == "center_input"}
                if "k" in cls.hparam_defaults and k is not None:
                    hp["k"] = k
                spec = SAESpec(a, w, hp, lr)
                if spec.label() not in seen:
                    seen.add(spec.label())
                    specs.append(spec)
    return specs
