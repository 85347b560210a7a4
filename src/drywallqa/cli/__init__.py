"""The ``drywallqa`` command line: a thin layer over the Python API.

Each module in this package adds the subcommands of one pipeline stage with ``add_commands``;
every command handler is a few lines that parse arguments and call the API. Errors derived from
:class:`drywallqa.errors.DrywallQAError` are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from drywallqa import __version__
from drywallqa.errors import DrywallQAError

# Stages in pipeline order; each module defines add_commands(subparsers).
COMMAND_MODULES = ("data", "quickstart", "masks", "trainset", "train", "evaluate", "predict", "review", "report", "export", "bench", "serve", "app",
                   "watch")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="drywallqa",
        description="Text-prompted segmentation for drywall quality assurance.",
    )
    parser.add_argument("--version", action="version", version=f"drywallqa {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"drywallqa.cli.{module}").add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``drywallqa`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except DrywallQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A full disk, a read-only folder or a vanished file met where no stage expected it: still
        # one line naming the file, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
