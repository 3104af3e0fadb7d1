"""The SAE architectures by name: :func:`register` adds one, ``--arch NAME`` looks it up.

An architecture is one :class:`~untwine.sae.base.SparseAutoencoder` subclass and one
``register(cls)`` call; everything else reads the class: ``untwine sae train/sweep``
(hyper-parameters from its ``Params`` dataclass, its ``default_lr``), ``encode`` and
``evaluate``, the SAELens writer and reader (:mod:`untwine.sae.io`: ``saelens_architecture``,
``saelens_reads``, ``saelens_keys``, ``extra_tensor_shapes``, ``saelens_hparams``) and the
command-line help (:func:`describe_architectures`).  untwine's own architectures register
themselves in their modules, listed in :data:`untwine.sae.BUILTIN`.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from pathlib import Path

from untwine.errors import UntwineError
from untwine.registry import Registry
from untwine.sae.base import CENTER_INPUT, SparseAutoencoder
from untwine.sae.hparams import describe

#: architecture name -> class, in the order registered
ARCHITECTURES: Registry[type[SparseAutoencoder]] = Registry("architecture", "SAE architectures")

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: the --plugin sources this process imported
_PLUGINS: set[str] = set()


def _refuse(cls: type, why: str) -> UntwineError:
    return UntwineError(f"cannot register {getattr(cls, '__qualname__', cls)!r} as an SAE architecture: {why}")


def register(cls: type[SparseAutoencoder]) -> type[SparseAutoencoder]:
    """Add ``cls`` to :data:`ARCHITECTURES` under ``cls.name`` (usable as a class decorator).

    Refused in one line: not a :class:`~untwine.sae.base.SparseAutoencoder`, a name that is
    not lower-case letters, digits and ``_`` or is taken by another class, hyper-parameters
    not declared as a ``Params`` dataclass, no ``encode_batch``, no ``saelens_architecture``,
    a SAELens architecture another class already reads, an unusable ``default_lr``.
    Registering the same class again changes nothing; the class of the same name from the
    same module imported again (:func:`load_plugin` twice in one process) replaces it.
    """
    if not (isinstance(cls, type) and issubclass(cls, SparseAutoencoder)):
        raise _refuse(cls, "not a subclass of untwine.sae.SparseAutoencoder")
    name = cls.__dict__.get("name", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _refuse(cls, f"its name must be lower-case letters, digits and _ (set the class attribute name), got {name!r}")
    other = ARCHITECTURES.get(name)
    if other is cls:
        return cls
    if other is not None and (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise _refuse(cls, f"the name {name!r} is taken by {other.__module__}.{other.__qualname__}")
    ARCHITECTURES.pop(name, None)  # the same class of a module imported again replaces the old one
    if {f.name for f in cls.hparam_fields} != set(cls.hparam_defaults):
        raise _refuse(cls, "declare the hyper-parameters as a dataclass Params (untwine.sae.hparams.hparam fields), "
                           "not hparam_defaults")
    if cls.encode_batch is SparseAutoencoder.encode_batch:
        raise _refuse(cls, "it does not implement encode_batch")
    if not isinstance(cls.saelens_architecture, str):
        raise _refuse(cls, f"saelens_architecture must be a string, got {cls.saelens_architecture!r}")
    lr = cls.default_lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and 0 < lr < 1):
        raise _refuse(cls, f"default_lr must be a number in (0, 1), got {lr!r}")
    bad = {d for shape in cls.extra_tensor_shapes.values() for d in shape} - {"d_in", "d_sae"}
    if bad:
        raise _refuse(cls, f"extra_tensor_shapes may only name d_in and d_sae, got {sorted(bad)}")
    for sl in _reads(cls):
        owner = reader_of(sl)
        if owner is not None:
            raise _refuse(cls, f"SAELens architecture {sl!r} is already read as {owner.name!r} (saelens_reads)")
    if not cls.__dict__.get("saelens_architecture"):  # not inherited: a subclass's files are its own
        cls.saelens_architecture = name
    ARCHITECTURES[name] = cls
    return cls


def load_plugin(source: str) -> None:
    """Import ``source``, a module name (``my_pkg.my_sae``) or a ``.py`` file, whose import
    registers architectures (``untwine sae ... --plugin SOURCE``); failures are one line.
    A source already imported by this process is not imported again."""
    if source in _PLUGINS:
        return
    try:
        if source.endswith(".py"):
            path = Path(source)
            if not path.is_file():
                raise UntwineError(f"--plugin {source}: no such file")
            name = f"untwine_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(source)
    except UntwineError:
        raise
    except Exception as exc:  # noqa: BLE001 - the plug-in's own code: any error is one line
        raise UntwineError(f"--plugin {source}: cannot import it ({type(exc).__name__}: {exc})") from None
    _PLUGINS.add(source)


def unregister(name: str) -> None:
    """Remove architecture ``name`` (tests, interactive sessions); unknown names are ignored."""
    ARCHITECTURES.pop(name, None)


def get_architecture(name: str) -> type[SparseAutoencoder]:
    """The registered class of ``name``; an unknown name is one error line listing the known ones."""
    return ARCHITECTURES.lookup(name)


def reader_of(sl_arch: str) -> type[SparseAutoencoder] | None:
    """The registered class that loads SAELens architecture ``sl_arch`` (None: none)."""
    return next((c for c in ARCHITECTURES.values() if sl_arch in _reads(c)), None)


def saelens_read() -> list[str]:
    """Every SAELens architecture untwine loads (from files without an ``untwine`` block)."""
    return [sl for c in ARCHITECTURES.values() for sl in _reads(c)]


def _reads(cls: type[SparseAutoencoder]) -> tuple[str, ...]:
    """The SAELens architectures ``cls`` itself declares it reads (a subclass inherits none)."""
    return tuple(cls.__dict__.get("saelens_reads", ()))


def describe_architectures() -> str:
    """The architectures and their typed hyper-parameters, for ``--help``."""
    lines = ["architectures (--arch) and their hyper-parameters (--set KEY=VALUE; * may differ within a stacked sweep):",
             f"  every architecture: {describe((CENTER_INPUT,))[0]}"]
    for name, cls in ARCHITECTURES.items():
        doc = (cls.__doc__ or "").strip().splitlines()
        lines.append(f"  {name}: {doc[0] if doc else cls.__qualname__} (default lr {cls.default_lr:g})")
        lines += [f"      {line}" for line in describe(cls.hparam_fields)] or ["      (no hyper-parameters)"]
    return "\n".join(lines)
