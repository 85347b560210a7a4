"""Fixtures of the labelling-tool tests: a model-free predictor and photos it finds bars in."""

from __future__ import annotations

import pytest
from labelling_helpers import DarkBars, bar_photo

from drywallqa.files import write_image


@pytest.fixture
def dark_bars() -> DarkBars:
    return DarkBars()


@pytest.fixture
def photo_tree(tmp_path):
    """A Label Studio data folder with one upload, and a local files root with one photo in a subfolder."""
    upload = tmp_path / "ls-data" / "media" / "upload" / "3"
    write_image(upload / "1a2b3c4d-wall.png", bar_photo())
    local = tmp_path / "site-photos"
    write_image(local / "level-2" / "room 5.png", bar_photo())
    (tmp_path / "secret.png").write_bytes((upload / "1a2b3c4d-wall.png").read_bytes())
    return tmp_path
