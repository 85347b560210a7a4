"""Type checking with every test run: mypy on the package, configured by pyproject.toml's [tool.mypy]
(lenient on the package, strict on the QA domain, the model interface and the predictors; issue 29)."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_type_checks():
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy not found: install the test extra (pip install -e '.[test]')")
    # mypy's cache, kept between runs in the temporary folder (one per checkout), turns a cold run
    # of a minute into a few seconds when little changed.
    cache = Path(tempfile.gettempdir()) / f"drywallqa-mypy-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
