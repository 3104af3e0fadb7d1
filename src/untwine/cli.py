"""The ``untwine`` command line.

Each sub-command lives in its own module under :mod:`untwine.commands` and
exposes ``add_parser(subparsers)`` (which registers the parser and sets
``func``).  Modules are imported lazily so ``untwine --help`` stays fast.
Bad input raised as :class:`untwine.errors.UntwineError` is printed as one line
(``error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from untwine.errors import UntwineError

#: sub-command name -> module under untwine.commands
COMMANDS: dict[str, str] = {
    "score": "score",
    "datasets": "datasets",
    "train": "train",
    "evaluate": "evaluate",
    "traverse": "traverse",
    "report": "report",
    "study": "study",
    "health": "health",
    "lm": "lm",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except UntwineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
