"""Fixtures of the pseudo-mask tests: synthetic sample data and a tiny hand-built thin-line dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from pseudomask_fixtures import write_line_dataset

from drywallqa.data import AnnotatedDataset

SIZE = 256


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory):
    """Synthetic cracks (polygons) and joints (boxes + truth file), 24 images of 256 px."""
    synthetic = pytest.importorskip("drywallqa.data.synthetic", reason="drywallqa.data.synthetic not available")
    return synthetic.generate_sample_data(tmp_path_factory.mktemp("pm-sample") / "data", images=24, seed=0, size=SIZE)


@pytest.fixture
def line_dataset(tmp_path) -> Path:
    """Six dark diagonal lines with polygons (the truth)."""
    return write_line_dataset(tmp_path / "lines")


@pytest.fixture
def mixed_dataset(tmp_path) -> Path:
    """Lines with polygons, lines with boxes only, and a background image."""
    return write_line_dataset(tmp_path / "mixed", mixed=True)


@pytest.fixture
def load():
    return lambda path: AnnotatedDataset.load(path, quiet=True)
