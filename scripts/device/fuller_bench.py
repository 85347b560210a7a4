"""Exit 0 when the bench JSON NEW measured at least as many runtimes as OLD (or OLD is missing).

scripts/device/after.sh asks before it writes a GPU call's bench into the docs: a bench cut short
(training and the end-to-end bench share the call's minutes) must not replace a fuller one.

    python scripts/device/fuller_bench.py NEW.json OLD.json && echo "NEW replaces OLD"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def measured_rows(path: Path) -> int:
    """Runtime rows a bench JSON holds; -1 when there is no such file."""
    return len(json.loads(path.read_text()).get("results") or []) if path.is_file() else -1


def main(argv: list[str]) -> int:
    new, old = (Path(p) for p in argv)
    return 0 if measured_rows(new) >= measured_rows(old) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
