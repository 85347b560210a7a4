"""The 'model' method: a trained drywallqa checkpoint refines each box (self-training)."""

from __future__ import annotations

import numpy as np
import pytest

from drywallqa.pseudomask import box_masks, create_method

models = pytest.importorskip("drywallqa.models", reason="drywallqa.models is not available")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny untrained PromptUNet (hashing text encoder, no pretrained weights), saved to disk."""
    import torch

    torch.manual_seed(0)
    model = models.build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    folder = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(folder)
    return folder


def test_model_masks_stay_in_their_boxes(checkpoint) -> None:
    method = create_method("model", weights=str(checkpoint), device="cpu")
    assert method.uses_torch and method.image_size == 64
    assert method.prompt_for("taping_area") == "segment taping area"
    image = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    boxes = np.array([[5, 5, 50, 70], [60, 10, 95, 40]], dtype=np.float64)
    masks = method(image, boxes, "taping_area")
    assert masks.shape == (2, 80, 100)
    assert not (masks & ~box_masks(boxes, 80, 100)).any() and all(m.any() for m in masks)


@pytest.mark.parametrize("empty", ["box", "empty"])
def test_boxes_without_prediction(checkpoint, empty) -> None:
    import torch

    method = create_method("model", weights=str(checkpoint), device="cpu", empty=empty)
    method.model.segment = lambda images, prompts: models.ModelOutput(
        torch.full((images.shape[0], 1, *images.shape[-2:]), -10.0), torch.zeros(images.shape[0])
    )
    boxes = np.array([[5, 5, 50, 70]], dtype=np.float64)
    masks = method(np.zeros((80, 100, 3), np.uint8), boxes, "crack")
    expected = box_masks(boxes, 80, 100) if empty == "box" else np.zeros((1, 80, 100), bool)
    assert (masks == expected).all()
