"""Writing and reading untwine's own files: atomic writes, JSON with NaN as null, YAML.

Every file untwine writes (checkpoints, configs, ``metrics.json``, reports, score
files, SAE weights) goes through :func:`atomic_write_bytes`: the data is written to
a synced temporary file beside the target and moved over it with ``os.replace``, so
a reader (or a crash) never sees half a file and no temporary file is left behind.
A location that cannot be written is one :class:`~untwine.errors.UntwineError` line
naming it.

:func:`write_json` writes a mapping whose non-finite floats (NaN, +-inf) become
``null``; :func:`read_yaml` reads a YAML mapping with one error line for a missing,
unreadable or malformed file.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from untwine.errors import UntwineError


def cache_dir(kind: str) -> Path:
    """Where untwine keeps what it computes once and reuses (reference scores, trained oracles):
    ``$UNTWINE_CACHE/KIND``, by default ``~/.cache/untwine/KIND`` (``$XDG_CACHE_HOME`` honoured)."""
    root = os.environ.get("UNTWINE_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "untwine")
    return Path(root) / kind


def fsync_dir(path) -> None:
    """Make a rename inside directory ``path`` durable (best effort where directories have no fd)."""
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


def write_synced(path, data: bytes) -> None:
    """Write ``data`` to ``path`` (not atomically) and fsync it: for files inside a temporary directory."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def temp_name(path) -> Path:
    """A unique hidden temporary name beside ``path`` (same directory, so ``os.replace`` is atomic)."""
    path = Path(path)
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"


def remove_stray_temporaries(folder) -> list[Path]:
    """Delete the temporary files :func:`atomic_write_bytes` left in ``folder`` when a write was
    killed (``.NAME.PID.HEX.tmp`` of processes no longer running); returns what was deleted."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        parts = p.name.split(".")
        if not (p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp") and len(parts) >= 5):
            continue
        try:
            pid = int(parts[-3])
        except ValueError:
            continue
        if pid != os.getpid() and _pid_alive(pid):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def cannot_write(path, exc: OSError, what: str = "write") -> UntwineError:
    """The one-line error for an output location that cannot be written."""
    return UntwineError(f"{path}: cannot {what} ({exc.strerror or exc})")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a synced temp file in the same directory and ``os.replace``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        # like mkstemp, but with the usual permissions (0666 & ~umask) instead of 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise
    fsync_dir(path.parent)


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively through dicts and lists)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return f if math.isfinite(f) else None


def json_text(data: Any, *, indent: int = 2) -> str:
    """``data`` as JSON text (non-finite floats as null), ending in a newline."""
    return json.dumps(json_safe(data), indent=indent) + "\n"


def write_json(path, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as JSON atomically, NaN and infinities as ``null``; returns the path."""
    atomic_write_text(path, json_text(data, indent=indent))
    return Path(path)


#: key of a scores file listing the scores that were computed but are undefined (NaN or infinite)
UNDEFINED_KEY = "_undefined"


def write_scores(path, scores, *, labels: dict[str, str] | None = None) -> Path:
    """Write a flat mapping of scores as JSON: non-finite values as ``null``, and their keys
    listed under ``"_undefined"`` so that a null reads as "computed, but undefined on these
    data" (a score that was not computed has no key at all).  ``labels`` (keys starting with
    ``_``, which :func:`read_scores` skips) say how the scores were computed."""
    data = {str(k): float(v) for k, v in scores.items()}
    undefined = [k for k, v in data.items() if not math.isfinite(v)]
    if undefined:
        data[UNDEFINED_KEY] = undefined
    for k, v in (labels or {}).items():
        if not k.startswith("_"):
            raise ValueError(f"score label {k!r} must start with '_'")
        data[k] = str(v)
    return write_json(path, data)


def read_scores(path) -> dict[str, float]:
    """A scores file written by :func:`write_scores` as floats (``null`` as NaN)."""
    data = read_json(path, what="scores file")
    if not isinstance(data, dict):
        raise UntwineError(f"{path} does not hold a JSON object of scores")
    return {k: (float("nan") if v is None else float(v)) for k, v in data.items() if not k.startswith("_")}


def read_text(path, *, what: str = "file") -> str:
    """A UTF-8 text file's contents (a leading byte-order mark dropped); one error line when it
    is missing, unreadable or not UTF-8 text."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UntwineError(f"{what} not found: {p}") from None
    except UnicodeDecodeError:
        raise UntwineError(f"{p}: not a text file (cannot decode as UTF-8)") from None
    except OSError as exc:
        raise UntwineError(f"{p}: cannot read ({exc.strerror or exc})") from None


def read_json(path, *, what: str = "file") -> Any:
    """Read a JSON file; one error line when it is missing, unreadable or not JSON."""
    p = Path(path)
    text = read_text(p, what=what)
    try:
        return json.loads(text)
    except ValueError:
        raise UntwineError(f"{p} is not valid JSON") from None


def read_yaml(path, *, what: str = "file", holds: str = "keys to values") -> dict[str, Any]:
    """Read a YAML file holding a mapping (empty file: ``{}``); one error line otherwise.

    ``what`` names the file in the messages (``"config file"``, ``"study file"``),
    ``holds`` says what the mapping should map.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UntwineError(f"{what} not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UntwineError(f"{what} {p} cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UntwineError(f"{what} {p} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UntwineError(f"{what} {p} must hold a mapping of {holds}")
    return data
