"""ruff over the code, the tests and the scripts, with pyproject.toml's [tool.ruff] rules (imports sorted
among them): a finding fails the suite. ``ruff check --fix src tests scripts`` fixes what it can."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff not found: install the test extra (pip install -e '.[test]')")
    done = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", "src", "tests", "scripts"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
