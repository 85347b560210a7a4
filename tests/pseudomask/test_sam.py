"""The 'sam' method: a tiny random SAM saved with save_pretrained loads through the real code path."""

from __future__ import annotations

import numpy as np
import pytest

from drywallqa.errors import DrywallQAError
from drywallqa.pseudomask import box_masks, create_method

transformers = pytest.importorskip("transformers", reason="the sam method needs transformers")


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    """A randomly initialised SAM with tiny vision / prompt / mask-decoder sizes, saved to disk."""
    import torch
    from transformers import SamConfig, SamModel, SamProcessor

    try:
        from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import SamImageProcessor as ImageProcessor

    side, patch = 64, 8
    config = SamConfig(
        vision_config={
            "hidden_size": 16, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": side, "patch_size": patch, "window_size": 4, "global_attn_indexes": (1,),
            "num_pos_feats": 8, "mlp_dim": 32,
        },
        prompt_encoder_config={"hidden_size": 16, "image_size": side, "patch_size": patch, "mask_input_channels": 4},
        mask_decoder_config={
            "hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-sam")
    SamModel(config).save_pretrained(folder)
    processor = SamProcessor(image_processor=ImageProcessor(size={"longest_edge": side},
                                                            pad_size={"height": side, "width": side}))
    processor.save_pretrained(folder)
    return folder


def test_tiny_sam_masks_every_box_in_one_call(tiny_sam) -> None:
    method = create_method("sam", weights=str(tiny_sam), device="cpu")
    assert method.uses_torch and method.config()["model_type"] == "sam"
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    boxes = np.array([[4, 4, 60, 40], [50, 30, 120, 90], [0, 0, 128, 96]], dtype=np.float64)
    calls = []
    original = method.model.forward
    method.model.forward = lambda *a, **k: calls.append(k["input_boxes"].shape) or original(*a, **k)
    masks = method(image, boxes, "taping_area")
    assert masks.shape == (3, 96, 128) and masks.dtype == bool
    assert calls == [(1, 3, 4)]  # all boxes of the image in one batched call
    assert not (masks & ~box_masks(boxes, 96, 128)).any() and all(m.any() for m in masks)


def test_sam_multimask_picks_one_mask(tiny_sam) -> None:
    method = create_method("sam", weights=str(tiny_sam), device="cpu", multimask=True)
    image = np.full((64, 64, 3), 120, np.uint8)
    assert method(image, np.array([[8, 8, 40, 56]]), "crack").shape == (1, 64, 64)


def test_missing_weights_folder_says_what_to_download(tmp_path) -> None:
    with pytest.raises(DrywallQAError) as info:
        create_method("sam", weights=str(tmp_path / "no-such-folder"))
    message = str(info.value)
    assert "\n" not in message
    assert "huggingface-cli download facebook/sam-vit-base --local-dir DIR" in message and "--weights DIR" in message


def test_uncached_hub_id_offline_says_what_to_download(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-drywallqa-test-cache")
    with pytest.raises(DrywallQAError) as info:
        create_method("sam", weights="facebook/sam-vit-huge")
    message = str(info.value)
    assert "\n" not in message
    assert "huggingface-cli download facebook/sam-vit-huge --local-dir DIR" in message and "--weights DIR" in message


def test_folder_that_is_not_sam_is_refused(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(DrywallQAError, match="not a complete SAM checkpoint|not a SAM model"):
        create_method("sam", weights=str(tmp_path))


@pytest.mark.parametrize("load", ["pseudo-mask method", "two-stage"])
def test_loading_sam_leaves_transformers_logging_as_it_was(tiny_sam, load) -> None:
    from transformers.utils import logging as hf_logging

    from drywallqa.models import build_model

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    try:
        if load == "two-stage":
            build_model("two-stage", weights=str(tiny_sam), boxes="full-image", image_size=64)
        else:
            create_method("sam", weights=str(tiny_sam), device="cpu")
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)
