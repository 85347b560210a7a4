"""Shared fixtures of the export tests: one tiny model, exported once per test session.

The model is PromptUNet-lite0 at 64x64 with the weight-free hashing text encoder and random
weights. Random weights put almost every pixel below probability 0.5, so mask comparisons here
use a threshold at the reference's median probability, which splits each image about in half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from drywallqa.export import OnnxExport, export_onnx, synthetic_images
from drywallqa.models import PromptSegmentationModel, build_model

MODEL_SIZE = 64


@pytest.fixture(scope="session")
def tiny_model() -> PromptSegmentationModel:
    torch.manual_seed(0)
    return build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=MODEL_SIZE).eval()


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory) -> OnnxExport:
    """fp32 and int8 graphs of :func:`tiny_model` with their prompt embeddings and parity reports."""
    return export_onnx(tiny_model, tmp_path_factory.mktemp("export") / "tiny.onnx", int8=True, check_images=4)


@pytest.fixture(scope="session")
def model_dir(tiny_model, tmp_path_factory) -> Path:
    """:func:`tiny_model` written with ``save_pretrained``."""
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def photos() -> tuple[list[np.ndarray], list[str]]:
    """Four synthetic photos of different sizes (none square at the model size but one) and their prompts."""
    images, prompts = synthetic_images(4, size=96)
    return [images[0], images[1][:80, :120], images[2][:64, :64], images[3][:96, :72]], prompts


@pytest.fixture(scope="session")
def conditioned_model() -> PromptSegmentationModel:
    """:func:`tiny_model` with FiLM heads that depend on the prompt (trained ones do; random ones start
    at zero, which would make every prompt's mask the same)."""
    torch.manual_seed(0)
    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=MODEL_SIZE).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for head in model.film.heads:
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.2)
    return model


@pytest.fixture(scope="session")
def exported_conditioned(conditioned_model, tmp_path_factory) -> OnnxExport:
    """:func:`conditioned_model` exported (fp32, with its encoder and decoder graphs)."""
    return export_onnx(conditioned_model, tmp_path_factory.mktemp("export-conditioned") / "conditioned.onnx", check_images=2)
