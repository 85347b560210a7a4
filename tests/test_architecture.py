"""The package's shape, checked with every test run: import layers and module size (issue 15)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "drywallqa"
MAX_MODULE_LINES = 500


def test_imports_follow_the_layer_contract():
    """`lint-imports` with pyproject.toml's contracts: no import goes up a layer, no folder cycle."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports not found: install the test extra (pip install -e '.[test]')")
    done = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_no_module_is_over_the_line_limit():
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text(encoding="utf-8").splitlines()) for p in SRC.rglob("*.py")}
    too_long = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"split these by idea (at most {MAX_MODULE_LINES} lines each): {too_long}"


def test_notebook_names_are_importable_from_the_top_package():
    import drywallqa

    for name in ("load_predictor", "Predictor", "build_model", "AnnotatedDataset", "evaluate", "train"):
        assert getattr(drywallqa, name) is not None
    code = ("import sys, drywallqa; "
            "print(sorted(m for m in ('torch', 'lightning', 'onnxruntime', 'pydantic') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"`import drywallqa` must stay light, but it loaded {loaded}"
