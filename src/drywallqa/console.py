"""The rich console every command prints its tables with."""

from __future__ import annotations

import sys


def get_console():
    """A rich Console; 120 columns wide when the output is not a terminal (logs, CI, pipes)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120)
