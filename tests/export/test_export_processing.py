"""Shared pre/post-processing: the NumPy path means what ModelPredictor's torch path means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from drywallqa.errors import ConfigError
from drywallqa.files import decode_image_bytes
from drywallqa.inference import logits_to_result
from drywallqa.processing import (
    encode_mask_png,
    logit_threshold,
    nhwc_uint8_to_nchw_float,
    resize_to_model_input,
    sigmoid,
    upsample_logits,
)


@pytest.mark.parametrize("source, target", [((64, 64), (97, 33)), ((448, 448), (640, 480)), ((64, 64), (40, 50))])
def test_upsample_matches_torch_bilinear(source, target) -> None:
    logits = np.random.default_rng(0).standard_normal(source).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(logits)[None, None], size=target, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(upsample_logits(logits, *target), expected[0, 0].numpy(), atol=2e-4)


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.73])
def test_logit_threshold_is_the_probability_threshold(threshold) -> None:
    logits = np.linspace(-5, 5, 10001, dtype=np.float32)
    result = logits_to_result(logits.reshape(1, -1), 0.0, "p", (1, logits.size), threshold)
    np.testing.assert_array_equal(result.mask[0], sigmoid(logits) > threshold)
    assert result.confidence == pytest.approx(0.5)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2])
def test_threshold_outside_zero_one_is_rejected(threshold) -> None:
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        logit_threshold(threshold)


def test_sigmoid_is_stable_for_large_logits() -> None:
    values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0])
    assert values.dtype == np.float32


def test_uint8_nhwc_to_float_nchw() -> None:
    batch = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    expected = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255).numpy()
    np.testing.assert_allclose(nhwc_uint8_to_nchw_float(batch), expected, atol=1e-7)
    with pytest.raises(ValueError, match=r"uint8 \(B, H, W, 3\)"):
        nhwc_uint8_to_nchw_float(batch.astype(np.float32))


def test_resize_keeps_model_sized_images_and_stretches_others() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    assert resize_to_model_input(image, 64) is image
    assert resize_to_model_input(np.zeros((30, 100, 3), np.uint8), 64).shape == (64, 64, 3)


def test_mask_png_round_trip() -> None:
    mask = np.zeros((20, 30), bool)
    mask[5:9, 3:25] = True
    decoded = decode_image_bytes(encode_mask_png(mask))
    np.testing.assert_array_equal(decoded[..., 0] > 127, mask)
