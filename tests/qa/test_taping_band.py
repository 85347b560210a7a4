"""The taping band refined from the photo inside a predicted mask (qa/taping_band.py), on rendered
walls whose joints are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drywallqa.errors import ConfigError
from drywallqa.qa import inspect_mask, measure_mask
from drywallqa.qa.taping_band import (
    SEAM_BAND_SHARE,
    TAPE_WIDTH_MM,
    TapingBandParams,
    refine_taping_band,
)


def wall(height: int, width: int, level: float = 150.0, seed: int = 0) -> np.ndarray:
    """A plain wall's grey levels with a little paper grain."""
    return level + np.random.default_rng(seed).normal(0.0, 2.0, (height, width))


def across(shape: tuple[int, int], point: tuple[float, float], angle_deg: float) -> np.ndarray:
    """Signed distance of every pixel centre from the line through ``point`` (x, y) at ``angle_deg``."""
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    angle = math.radians(angle_deg)
    return (xs - point[0]) * -math.sin(angle) + (ys - point[1]) * math.cos(angle)


def add_compound(gray: np.ndarray, distance: np.ndarray, width: float, rise: float = 40.0, ramp: float = 8.0) -> np.ndarray:
    """A bright band of joint compound whose opacity is one half exactly at ``|distance| = width / 2``;
    returns its true mask."""
    opacity = np.clip(0.5 - (np.abs(distance) - width / 2.0) / ramp, 0.0, 1.0)
    gray += rise * opacity
    return np.abs(distance) <= width / 2.0


def add_seam(gray: np.ndarray, distance: np.ndarray, depth: float = 0.4) -> None:
    """A bare seam: a dark gap about two pixels wide."""
    gray *= 1.0 - depth * np.exp(-((distance / 1.0) ** 2))


def rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def box(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_a_diagonal_compound_band_in_a_broad_box_gets_the_bands_width():
    shape = (240, 320)
    gray = wall(*shape)
    truth = add_compound(gray, across(shape, (160, 120), 35.0), width=30.0)
    mask = box(shape, 40, 200, 60, 260)  # the model's broad, box-like region around the joint
    figures = measure_mask(mask, "joint", image=rgb(gray))
    assert figures.width_mean_px == pytest.approx(30.0, rel=0.1)
    assert figures.mask_width_mean_px > 2 * figures.width_mean_px  # the box, kept for comparison
    assert figures.area_px == mask.sum() and figures.components == 1  # the mask stays the mask
    band = refine_taping_band(rgb(gray), mask)
    assert [line.kind for line in band.lines] == ["compound"] and band.refined == 1
    assert iou(band.mask, truth & mask) > 0.85 and not (band.mask & ~mask).any()


def test_a_diagonal_seam_gets_the_tapes_band_centred_on_it():
    shape = (300, 300)
    gray = wall(*shape)
    distance = across(shape, (150, 150), -50.0)
    add_seam(gray, distance)
    mask = box(shape, 60, 240, 50, 250)
    band = refine_taping_band(rgb(gray), mask)
    (line,) = band.lines
    assert line.kind == "seam" and line.width_px == pytest.approx(SEAM_BAND_SHARE * 300)
    assert iou(band.mask, (np.abs(distance) <= line.width_px / 2) & mask) > 0.9
    # With the photo's scale the band is the tape's width.
    scaled = refine_taping_band(rgb(gray), mask, mm_per_px=2.0)
    assert scaled.lines[0].width_px == pytest.approx(TAPE_WIDTH_MM / 2.0)
    figures = measure_mask(mask, "joint", image=rgb(gray), mm_per_px=2.0)
    assert figures.to_dict()["width_mean_mm"] == pytest.approx(TAPE_WIDTH_MM, rel=0.1)


def test_a_t_of_compound_bands_in_one_component_gets_both_bands():
    shape = (240, 240)
    gray = wall(*shape)
    vertical = add_compound(gray, across(shape, (120, 0), 90.0), width=26.0)
    horizontal = add_compound(gray, across(shape, (0, 170), 0.0), width=26.0)
    mask = box(shape, 0, 240, 60, 180) | box(shape, 130, 210, 0, 240)
    band = refine_taping_band(rgb(gray), mask)
    assert [line.kind for line in band.lines] == ["compound", "compound"]
    assert iou(band.mask, (vertical | horizontal) & mask) > 0.8


def test_a_band_whose_far_side_is_out_of_frame_keeps_the_predicted_mask():
    # A joint needs wall on both sides to tell it from a lighting gradient: with one side out of
    # the frame the photo cannot refine it, and the mask stands.
    shape = (200, 300)
    gray = wall(*shape)
    add_compound(gray, across(shape, (0, 5), 0.0), width=50.0)  # its upper half is out of frame
    mask = box(shape, 0, 35, 0, 300)
    band = refine_taping_band(rgb(gray), mask)
    assert band.kept == 1 and (band.mask == mask).all()


def test_without_the_photo_the_figures_are_the_masks():
    mask = box((100, 200), 20, 70, 10, 190)
    figures = measure_mask(mask, "joint")
    assert figures.width_source == "mask" and figures.mask_width_mean_px == figures.width_mean_px
    assert figures.width_mean_px == pytest.approx(50.0, abs=1.0)


def test_no_joint_in_the_photo_keeps_the_mask_and_its_figures():
    shape = (160, 200)
    gray = wall(*shape)
    mask = box(shape, 30, 130, 40, 160)
    band = refine_taping_band(rgb(gray), mask)
    assert band.lines == () and band.kept == 1 and (band.mask == mask).all()
    plain, with_photo = measure_mask(mask, "joint"), measure_mask(mask, "joint", image=rgb(gray))
    assert with_photo.width_mean_px == plain.width_mean_px == with_photo.mask_width_mean_px
    assert with_photo.length_px == plain.length_px


def test_a_blob_beside_a_refined_joint_is_left_out_of_the_band():
    shape = (240, 320)
    gray = wall(*shape)
    add_seam(gray, across(shape, (80, 0), 90.0))
    blob = box(shape, 150, 200, 200, 280)
    band = refine_taping_band(rgb(gray), box(shape, 0, 240, 40, 120) | blob)
    assert band.refined == 1 and band.left_out == 1 and not (band.mask & blob).any()


def test_the_edge_of_a_board_against_a_dark_background_is_no_seam():
    shape = (200, 200)
    gray = wall(*shape)
    gray[:, 110:] = 40.0  # the floor behind the board
    band = refine_taping_band(rgb(gray), box(shape, 20, 180, 60, 160))
    assert all(line.kind != "seam" for line in band.lines)


def test_a_mask_inside_a_wider_bright_area_finds_no_band_of_its_own():
    # A brighter patch of wall (light, a fresh coat) wider than the predicted box: no edge of it
    # lies in the box, so the box holds no joint's band; the mask stands.
    shape = (240, 320)
    gray = wall(*shape)
    add_compound(gray, across(shape, (160, 0), 90.0), width=200.0)
    mask = box(shape, 20, 220, 110, 210)
    band = refine_taping_band(rgb(gray), mask)
    assert band.lines == () and (band.mask == mask).all()


def test_empty_mask():
    shape = (80, 80)
    image, mask = rgb(wall(*shape)), np.zeros(shape, dtype=bool)
    band = refine_taping_band(image, mask)
    assert not band.mask.any() and band.lines == () and band.refined == band.kept == band.left_out == 0
    figures = measure_mask(mask, "joint", image=image)
    assert figures.components == 0 and figures.width_mean_px is None


def test_a_large_photo_is_refined_on_a_reduced_copy_and_drawn_at_full_size():
    shape = (900, 1200)
    gray = wall(*shape)
    truth = add_compound(gray, across(shape, (600, 450), 60.0), width=90.0, ramp=20.0)
    mask = box(shape, 150, 750, 250, 950)
    band = refine_taping_band(rgb(gray), mask, params=TapingBandParams(work_side=400))
    assert band.lines[0].width_px == pytest.approx(90.0, rel=0.1)
    assert iou(band.mask, truth & mask) > 0.85


def test_inspect_mask_measures_taping_figures_on_the_band():
    shape = (240, 320)
    gray = wall(*shape)
    add_compound(gray, across(shape, (160, 120), 35.0), width=30.0)
    mask = box(shape, 40, 200, 60, 260)
    inspection = inspect_mask(mask, "segment taping area", image=rgb(gray))
    assert inspection.figures.width_mean_px == pytest.approx(30.0, rel=0.1)
    assert inspection.to_dict()["figures"]["mask_width_mean_px"] > 60


@pytest.mark.parametrize(
    ("image", "message"),
    [(np.zeros((50, 60, 3), np.uint8), "the mask's size"), (np.zeros((40, 60), np.uint8), "RGB uint8")],
)
def test_a_photo_that_does_not_fit_the_mask_is_refused(image, message):
    with pytest.raises(ConfigError, match=message):
        refine_taping_band(image, np.ones((40, 60), dtype=bool))


@pytest.mark.parametrize(
    ("field", "value"), [("max_lines", 0), ("seam_band_share", 1.5), ("seam_sigmas", ()), ("min_contrast", -1.0)]
)
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TapingBandParams(**{field: value})
