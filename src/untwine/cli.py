"""The ``untwine`` command line.

Each sub-command lives in its own module under :mod:`untwine.commands` and
exposes ``add_parser(subparsers)`` (which registers the parser and sets
``func``).  Modules are imported lazily so ``untwine --help`` stays fast.
Bad input raised as :class:`untwine.errors.UntwineError`, and an operating-system
refusal (a location that cannot be written, a full disk), is printed as one line
(``error: ...``) with exit status 2 instead of showing a traceback;
:class:`untwine.errors.UntwineWarning` is printed as one ``warning: ...`` line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from untwine.errors import UntwineError, UntwineWarning

#: sub-command name -> module under untwine.commands
COMMANDS: dict[str, str] = {
    "score": "score",
    "datasets": "datasets",
    "train": "train",
    "evaluate": "evaluate",
    "traverse": "traverse",
    "report": "report",
    "study": "study",
    "sae": "sae",
    "health": "health",
    "lm": "lm",
    "activations": "activations",
    "directions": "directions",
}


def build_parser() -> argparse.ArgumentParser:
    from untwine import __version__

    parser = argparse.ArgumentParser(
        prog="untwine",
        description="Disentangled representation learning: measure, learn, look inside, study.",
    )
    parser.add_argument("--version", action="version", version=f"untwine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"untwine.commands.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"untwine.commands.{module}":
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """untwine's own warnings as one ``warning: ...`` line; others as Python shows them."""
    if issubclass(category, UntwineWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # each call shows its own warnings, also when main() runs twice in one process (Python would
    # show a warning from the same line once); catch_warnings restores the filters and the hook
    with warnings.catch_warnings():
        warnings.simplefilter("default", UntwineWarning)
        warnings.showwarning = _show_warning
        try:
            rc = args.func(args)
        except UntwineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            # the machine said no: a location that cannot be written, a full disk, a vanished file
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
