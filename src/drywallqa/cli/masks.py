"""``drywallqa masks``: pseudo-masks from boxes, and their quality where truth exists."""

from __future__ import annotations


def add_commands(subparsers) -> None:
    from drywallqa.pseudomask.command import DESCRIPTION, add_arguments

    add_arguments(subparsers.add_parser("masks", help=DESCRIPTION, description=DESCRIPTION))
