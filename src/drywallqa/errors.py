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


#: Warning lines printed per reason; the rest are counted and summed up in one line
#: (:meth:`IssueLog.report_hidden`), so a file of a million bad entries prints 21 lines, not gigabytes.
SHOWN_PER_REASON = 20
#: Skipped entries kept per reason in :attr:`IssueLog.issues` (all of them are counted), so the
#: log's memory stays bounded whatever the input.
KEPT_PER_REASON = 1000


@dataclass
class IssueLog:
    """Collects skipped entries while loading; in strict mode the first one raises.

    Loaders call :meth:`skip` for each bad entry. By default it prints one warning line to stderr
    and keeps going; with ``strict=True`` it raises :class:`DataError` instead, which the CLI turns
    into exit code 2. Only the first :data:`SHOWN_PER_REASON` warnings of each reason are printed
    and the first :data:`KEPT_PER_REASON` kept in :attr:`issues`; every one is counted, and
    :meth:`report_hidden` prints one line per reason for those not shown.

    Example:
        >>> log = IssueLog(quiet=True)
        >>> log.skip("a.json", "annotation id=3", "zero-area box")
        >>> log.counts()
        {'zero-area box': 1}
    """

    strict: bool = False
    quiet: bool = False
    issues: list[InputIssue] = field(default_factory=list)
    _counts: Counter = field(default_factory=Counter, repr=False)
    _file_counts: Counter = field(default_factory=Counter, repr=False)
    _reported: Counter = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        for issue in self.issues:
            self._count(issue)

    def skip(self, file: object, entry: str, reason: str, detail: str = "") -> None:
        issue = InputIssue(str(file), entry, reason, detail)
        if self.strict:
            raise DataError(f"{issue} (strict mode: fix or remove this entry, or run without --strict)")
        seen = self._count(issue)
        if seen <= KEPT_PER_REASON:
            self.issues.append(issue)
        if not self.quiet and seen <= SHOWN_PER_REASON:
            print(f"warning: skipped {issue}", file=sys.stderr)

    def skip_many(self, file: object, reason: str, count: int) -> None:
        """Count ``count`` more skipped entries of one reason without a line or an entry each
        (:meth:`report_hidden` sums them up); for a file of millions of identical bad entries."""
        if count > 0:
            self._counts[reason] += count
            self._file_counts[(str(file), reason)] += count

    def _count(self, issue: InputIssue) -> int:
        self._counts[issue.reason] += 1
        self._file_counts[(issue.file, issue.reason)] += 1
        return self._counts[issue.reason]

    def extend(self, other: IssueLog) -> None:
        """Add the entries and counts of another log (nothing is printed)."""
        kept = Counter(issue.reason for issue in self.issues)
        for issue in other.issues:
            if kept[issue.reason] < KEPT_PER_REASON:
                self.issues.append(issue)
                kept[issue.reason] += 1
        self._counts.update(other._counts)
        self._file_counts.update(other._file_counts)

    def report_hidden(self) -> None:
        """Print one line per reason whose warnings were not all shown (once per hidden entry)."""
        for reason, total in self._counts.items():
            hidden = total - min(total, SHOWN_PER_REASON) - self._reported[reason]
            if hidden > 0 and not self.quiet:
                print(f"warning: skipped {hidden} more: {reason} (only the first {SHOWN_PER_REASON} are shown)",
                      file=sys.stderr)
            self._reported[reason] += max(hidden, 0)

    def counts(self, file: object = None) -> dict[str, int]:
        """Number of skipped entries per reason, of every file or of one."""
        if file is None:
            return dict(self._counts)
        return {reason: n for (name, reason), n in self._file_counts.items() if name == str(file)}

    def __len__(self) -> int:
        return sum(self._counts.values())
