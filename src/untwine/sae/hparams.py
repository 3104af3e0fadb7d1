"""Typed hyper-parameters of an SAE architecture: one dataclass per architecture.

An architecture declares its hyper-parameters as a keyword-only dataclass, its ``Params``::

    @dataclass(kw_only=True)
    class Params:
        k: int = hparam(doc="active latents per row", member=True, low=1)   # no default: required
        l1_coefficient: float = hparam(3.0, doc="L1 weight", low=0)

Each field's type (``int``, ``float``, ``bool``, ``str``, or one of them ``| None``) is
what values are coerced to: ``--set k=abc`` is one error line naming ``k`` and ``int``.
:func:`hparam` adds a one-line description, ``member`` (may differ between the members of
one stacked module, a sweep's axis) and bounds (``low``: inclusive, ``above``: exclusive).
Floats must be finite.  Architectures add cross-field checks in ``check_hparams``.
``untwine sae train --help`` lists every architecture's fields with their types and
defaults (:func:`describe`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any

from untwine.errors import UntwineError

#: a field without a default must be given (``--set KEY=VALUE`` or a flag such as ``--k``)
REQUIRED = MISSING
_KINDS = (bool, int, float, str)


def hparam(default: Any = REQUIRED, *, doc: str = "", member: bool = False, low: float | None = None,
           above: float | None = None) -> Any:
    """A hyper-parameter field of an architecture's ``Params`` dataclass (see the module docstring)."""
    meta = {"doc": doc, "member": member, "low": low, "above": above}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Field:
    """One declared hyper-parameter, read from a ``Params`` dataclass."""

    name: str
    kind: type
    optional: bool  # None allowed
    default: Any  # REQUIRED when it must be given
    doc: str = ""
    member: bool = False
    low: float | None = None
    above: float | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def type_name(self) -> str:
        return self.kind.__name__ + (" | None" if self.optional else "")

    def coerce(self, arch: str, value: Any) -> Any:
        """``value`` as this field's type, within its bounds; otherwise one error line."""
        if value is None:
            if self.optional:
                return None
            raise UntwineError(f"architecture {arch!r}: hyper-parameter {self.name} ({self.type_name()}) needs a value")
        v = _convert(self.kind, value)
        if v is None:
            raise UntwineError(f"architecture {arch!r}: hyper-parameter {self.name} must be {self.type_name()}, got {value!r}")
        if self.low is not None and v < self.low:
            raise UntwineError(f"architecture {arch!r}: hyper-parameter {self.name} must be >= {self.low:g}, got {value!r}")
        if self.above is not None and not v > self.above:
            raise UntwineError(f"architecture {arch!r}: hyper-parameter {self.name} must be > {self.above:g}, got {value!r}")
        return v


def _convert(kind: type, value: Any) -> Any:
    """``value`` converted to ``kind`` (None when it is no such value: bools are not numbers,
    non-integral or non-finite numbers are not ints, non-finite floats are refused)."""
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value if isinstance(value, bool) else None
    if kind is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _kind_of(hint: Any, where: str) -> tuple[type, bool]:
    """``(kind, optional)`` of a field's type hint ``X`` or ``X | None``."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) != 1 or kinds[0] not in _KINDS:
        raise UntwineError(f"{where}: a hyper-parameter's type must be bool, int, float or str "
                           f"(or one of them | None), got {hint!r}")
    return kinds[0], len(kinds) < len(args)


def fields_of(params: type, where: str = "") -> tuple[Field, ...]:
    """The hyper-parameters a ``Params`` dataclass declares, in order."""
    if not (isinstance(params, type) and dataclasses.is_dataclass(params)):
        raise UntwineError(f"{where}: Params must be a dataclass of the hyper-parameters, got {params!r}")
    hints = typing.get_type_hints(params)
    out = []
    for f in dataclasses.fields(params):
        kind, optional = _kind_of(hints[f.name], f"{where}.{f.name}")
        meta = f.metadata
        out.append(Field(f.name, kind, optional, f.default, meta.get("doc", ""), bool(meta.get("member", False)),
                         meta.get("low"), meta.get("above")))
    return tuple(out)


def resolve(arch: str, fields: tuple[Field, ...], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (None: not given) completed with the defaults and coerced; unknown, missing
    and mistyped values are one error line each."""
    names = {f.name for f in fields}
    unknown = sorted(set(given) - names)
    if unknown:
        takes = ", ".join(f"{f.name} ({f.type_name()})" for f in fields) or "none"
        raise UntwineError(f"architecture {arch!r} has no hyper-parameter {unknown[0]!r} (it takes: {takes})")
    out = {}
    for f in fields:
        value = given.get(f.name)
        if value is None:
            if f.required:
                raise UntwineError(f"architecture {arch!r} needs {f.name} ({f.type_name()}; --set {f.name}=VALUE)")
            value = f.default
        out[f.name] = f.coerce(arch, value)
    return out


def describe(fields: tuple[Field, ...]) -> list[str]:
    """One help line per field: ``name: type = default  doc`` (``*``: may differ within a sweep's stack)."""
    lines = []
    for f in fields:
        default = "required" if f.required else f"= {f.default!r}"
        lines.append(f"{f.name}{'*' if f.member else ''}: {f.type_name()} {default}" + (f"  {f.doc}" if f.doc else ""))
    return lines
