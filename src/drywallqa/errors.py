"""Errors and the skip-or-fail policy for bad input.

Every error the CLI can meet derives from :class:`DrywallQAError`; the CLI prints its message on
one line and exits with code 2, so a user never sees a traceback for a bad file or argument.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field


class DrywallQAError(Exception):
    """Base class of all errors the CLI reports as one line and exit code 2."""


class DataError(DrywallQAError):
    """A dataset file or entry is unreadable or invalid."""


class ImageSizeError(DataError):
    """An image is too small to judge, or too large to decode (see :mod:`drywallqa.files`).

    Attributes:
        too_large: True for an image over the pixel limit, False for one under the minimum side.
    """

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


class ConfigError(DrywallQAError):
    """A configuration value or command-line argument is invalid."""


@dataclass(frozen=True)
class InputIssue:
    """One skipped input entry: which file, which entry in it, and why.

    Attributes:
        file: Path of the file the problem is in (image, annotation file, label file).
        entry: The entry inside the file (e.g. ``"annotation id=12"``), or ``""`` for the whole file.
        reason: Short machine-friendly kind of problem (e.g. ``"zero-area box"``).
        detail: Human explanation, may be empty.
    """

    file: str
    entry: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.entry}" if self.entry else self.file
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class IssueLog:
    """Collects skipped entries while loading; in strict mode the first one raises.

    Loaders call :meth:`skip` for each bad entry. By default it prints one warning line to stderr
    and keeps going; with ``strict=True`` it raises :class:`DataError` instead, which the CLI turns
    into exit code 2.

    Example:
        >>> log = IssueLog(quiet=True)
        >>> log.skip("a.json", "annotation id=3", "zero-area box")
        >>> log.counts()
        {'zero-area box': 1}
    """

    strict: bool = False
    quiet: bool = False
    issues: list[InputIssue] = field(default_factory=list)

    def skip(self, file: object, entry: str, reason: str, detail: str = "") -> None:
        issue = InputIssue(str(file), entry, reason, detail)
        if self.strict:
            raise DataError(f"{issue} (strict mode: fix or remove this entry, or run without --strict)")
        self.issues.append(issue)
        if not self.quiet:
            print(f"warning: skipped {issue}", file=sys.stderr)

    def counts(self) -> dict[str, int]:
        """Number of skipped entries per reason."""
        return dict(Counter(issue.reason for issue in self.issues))

    def __len__(self) -> int:
        return len(self.issues)
