"""The rich console every command prints its tables with."""

from __future__ import annotations

import sys


def get_console():
    """A rich Console; 120 columns wide when the output is not a terminal (logs, CI, pipes)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120)


class _NoBar:
    """Stands in for a progress bar that is off: same methods, shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def write(self, message: str) -> None:
        print(message, file=sys.stderr)

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def progress_bar(total: int, desc: str, *, unit: str = "image", enabled: bool = True, initial: int = 0):
    """The one progress bar of every command: tqdm on stderr, or a silent stand-in when off.

    Both have ``update(n)``, ``write(message)`` (a line printed above the bar, or to stderr),
    ``close()`` and work as context managers, so callers never branch on ``enabled``.
    """
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
    write = bar.write
    bar.write = lambda message: write(message, file=sys.stderr)
    return bar
