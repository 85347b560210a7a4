"""Shared fixtures: the real datasets in ../shared/data, when present; a read-only folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from testdata import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The real datasets in ../shared/data; tests using it skip cleanly when it is absent."""
    if not (SHARED_DATA / "cracks").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """An existing folder nothing can be written into, not even by root (CI runs as root): made
    read-only with chmod, and immutable with ``chattr +i`` when running as root (skips where the
    file system has no immutable flag)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here: cannot make a folder read-only for root")
    else:
        folder.chmod(0o555)
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    else:
        folder.chmod(0o755)


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory) -> Path:
    """Exports of model folders made by the default runtime go to a folder of the test session,
    never the user's cache (the variable reaches the CLI subprocesses of the tests too)."""
    folder = tmp_path_factory.mktemp("drywallqa-cache")
    before = os.environ.get("DRYWALLQA_CACHE")
    os.environ["DRYWALLQA_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("DRYWALLQA_CACHE", None)
    else:
        os.environ["DRYWALLQA_CACHE"] = before
