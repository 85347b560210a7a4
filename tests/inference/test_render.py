"""Overlays and JPEG encoding: the tint is the blend it claims, colours keep their channels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drywallqa.inference.render import jpeg_bytes, render_overlay


def _photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("colour, alpha", [((235, 40, 40), 0.45), ((30, 130, 255), 0.3), ((0, 0, 0), 1.0)])
def test_the_tint_is_the_rounded_blend_inside_and_nothing_changes_away_from_the_mask(colour, alpha):
    photo = _photo()
    mask = np.zeros(photo.shape[:2], dtype=bool)
    mask[20:90, 30:50] = True
    mask[60:70, 10:150] = True
    out = render_overlay(photo, mask, colour, alpha)
    expected = photo.astype(np.float64) * (1 - alpha) + np.asarray(colour) * alpha
    ring = np.ones((5, 5), np.uint8)
    inner = cv2.erode(mask.astype(np.uint8), ring).astype(bool)        # away from the drawn outline
    outer = ~cv2.dilate(mask.astype(np.uint8), ring).astype(bool)
    assert np.abs(out[inner] - expected[inner]).max() <= 0.5 + 1e-4  # rounded (in float32 arithmetic)
    assert np.array_equal(out[outer], photo[outer])
    assert np.array_equal(photo, _photo()), "the photo itself is not modified"


def test_an_empty_mask_gives_the_photo_back_unchanged():
    photo = _photo(1)
    assert np.array_equal(render_overlay(photo, np.zeros(photo.shape[:2], dtype=bool)), photo)


def test_jpeg_bytes_keep_rgb_channels_and_shrink_to_max_side():
    red = np.zeros((64, 96, 3), dtype=np.uint8)
    red[..., 0] = 220
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg_bytes(red), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert decoded.shape == red.shape
    assert np.abs(decoded.astype(int) - red).max() <= 3
    small = cv2.imdecode(np.frombuffer(jpeg_bytes(red, max_side=48), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape[:2] == (32, 48)
    grey = cv2.imdecode(np.frombuffer(jpeg_bytes(red[..., 0]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert grey.shape == (64, 96)
