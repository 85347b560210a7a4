"""Rendered cracks of known width (drywallqa.data.synthetic.width_targets)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from drywallqa.data.synthetic.width_targets import CONDITION_RANGES, render_width_target
from drywallqa.errors import ConfigError

CLEAN = {"blur_sigma": 0.0, "noise_sigma": 0.0, "jpeg_quality": 0, "light_gradient": 0.0, "contrast": 0.5}


@pytest.mark.parametrize("width_px", [0.5, 1.0, 2.5, 8.0])
def test_crack_darkens_the_wall_by_its_width_times_its_darkness(width_px):
    """Without blur, noise or JPEG, the darkness the crack adds per pixel of its length is its width
    times its contrast: anti-aliasing keeps sub-pixel widths."""
    target = render_width_target(width_px, 3, **CLEAN)
    plain = render_width_target(width_px, 3, **{**CLEAN, "contrast": 1e-9})          # the same wall, no crack
    grey = lambda image: image.astype(np.float64).mean(axis=2)  # noqa: E731
    lost = 1.0 - grey(target.image) / grey(plain.image)
    inner = target.centre_distance <= width_px / 2 + 2                                # near the line
    inner[:16], inner[-16:], inner[:, :16], inner[:, -16:] = False, False, False, False
    # The line's length inside that window: its exact mask's area over its width (>= 1 px).
    length = (target.exact_mask & inner).sum() / max(width_px, 1.0)
    assert lost[inner].sum() / length == pytest.approx(width_px * 0.5, rel=0.1)


def test_masks_hold_the_crack_and_the_band_is_wider():
    target = render_width_target(0.5, 1)
    exact, band = target.exact_mask, target.band_mask(4.0)
    assert exact.any() and not (exact & ~band).any() and band.sum() > 4 * exact.sum()
    count, _ = cv2.connectedComponents(exact.astype(np.uint8), connectivity=8)
    assert count == 2                                                                  # one 8-connected line


def test_same_seed_same_photo_and_conditions_within_their_ranges():
    first, again = render_width_target(3.0, 7), render_width_target(3.0, 7)
    assert np.array_equal(first.image, again.image) and first.conditions == again.conditions
    for name, (low, high) in CONDITION_RANGES.items():
        assert low <= first.conditions[name] <= high, name
    assert not np.array_equal(first.image, render_width_target(3.0, 8).image)


@pytest.mark.parametrize("kwargs", [{"width_px": 0}, {"width_px": float("nan")}, {"width_px": 2, "size": 8},
                                    {"width_px": 2, "contrast": 1.5}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ConfigError):
        render_width_target(**kwargs)
