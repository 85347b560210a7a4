"""Fixtures of the serving tests: a tiny saved model, synthetic photos, a fast fake predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import DarkPixelPredictor

from drywallqa.data.synthetic import render_sample_image
from drywallqa.files import write_image


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random promptunet (no pretrained weights, hashing text encoder, 64 px input), saved."""
    from drywallqa.models import build_model

    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    return model.save_pretrained(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_dir):
    from drywallqa.inference import load_predictor

    return load_predictor(str(tiny_model_dir), device="cpu")


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Four synthetic 96 px wall photos (two crack scenes, two joint scenes) as JPEGs."""
    folder = tmp_path / "photos"
    for index in range(4):
        dataset = "cracks" if index % 2 == 0 else "drywall-join"
        write_image(folder / f"wall-{index}.jpg", render_sample_image(dataset, index, size=96).image, quality=90)
    return folder


@pytest.fixture
def dark_predictor() -> DarkPixelPredictor:
    return DarkPixelPredictor()


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Run the tiny model on one thread: faster for 64 px inputs, and when the machine's cores are
    busy (CI, a training run) several OpenMP threads spin-wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
