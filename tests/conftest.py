"""Shared fixtures: the real datasets in ../shared/data, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from testdata import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The real datasets in ../shared/data; tests using it skip cleanly when it is absent."""
    if not (SHARED_DATA / "cracks").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
