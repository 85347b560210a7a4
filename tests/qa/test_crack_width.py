"""Crack width measured on the photo (drywallqa.qa.crack_width through measure_mask/inspect_mask)."""

from __future__ import annotations

import functools
import statistics

import numpy as np
import pytest

from drywallqa.data.synthetic.width_targets import render_width_target
from drywallqa.errors import ConfigError
from drywallqa.qa import QARules, inspect_mask, measure_mask
from drywallqa.qa.crack_width import summarise_widths

SEEDS = range(4)


def line_photo(height: int = 60, width: int = 200, rows: slice = slice(28, 31), wall: int = 200, dark: int = 70,
               gradient: float = 0.0) -> np.ndarray:
    """A grey wall with one sharp horizontal dark line (3 px by default); ``gradient`` brightens it
    from top to bottom by that share (uneven light)."""
    light = 1.0 + gradient * (np.arange(height)[:, None] / height - 0.5)
    photo = np.full((height, width), float(wall)) * light
    photo[rows, 20:180] = dark * light[rows, 0][:, None]
    return np.repeat(np.clip(photo, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def band(height: int = 60, width: int = 200, rows: slice = slice(24, 35)) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, 20:180] = True
    return mask


@functools.cache
def target(width_px: float, seed: int):
    return render_width_target(width_px, seed)


def measured(width_px: float, mask_kind: str) -> list[float]:
    widths = []
    for seed in SEEDS:
        target_ = target(width_px, seed)
        mask = target_.band_mask() if mask_kind == "band" else target_.exact_mask
        widths.append(measure_mask(mask, "crack", image=target_.image).width_mean_px)
    return widths


# -- validated on rendered cracks of known width ---------------------------------------------------
@pytest.mark.parametrize("mask_kind", ["band", "exact"])
@pytest.mark.parametrize("width_px", [2.0, 3.0, 5.0, 8.0])
def test_rendered_crack_of_known_width_is_measured_within_the_goal(width_px, mask_kind):
    errors = [abs(w - width_px) for w in measured(width_px, mask_kind)]
    assert statistics.median(errors) <= min(0.5, 0.2 * width_px)


def test_thinner_rendered_cracks_come_out_in_order():
    medians = [statistics.median(measured(w, "band")) for w in (0.5, 1.0, 1.5, 2.0)]
    assert medians == sorted(medians) and len(set(medians)) == len(medians)


# -- the photo's line, not the mask's band ---------------------------------------------------------
def test_band_mask_wider_than_the_line_gives_the_lines_width():
    figures = measure_mask(band(), "crack", image=line_photo(), mm_per_px=0.5)
    assert figures.width_source == "photo"
    assert figures.width_mean_px == pytest.approx(3.0, abs=0.1)
    assert figures.width_max_px == pytest.approx(3.0, abs=0.2)
    assert figures.mask_width_max_px == pytest.approx(11.0, abs=0.01)
    out = figures.to_dict()
    assert out["width_max_mm"] == pytest.approx(out["width_max_px"] * 0.5, abs=0.01)
    assert out["mask_width_mean_mm"] == pytest.approx(out["mask_width_mean_px"] * 0.5, abs=0.01)
    assert out["width_source"] == "photo"


def test_line_off_the_bands_middle_and_in_uneven_light_is_found():
    photo = line_photo(rows=slice(31, 34), gradient=0.4)                 # 3 px line near the band's lower edge
    figures = measure_mask(band(), "crack", image=photo)
    assert figures.width_mean_px == pytest.approx(3.0, abs=0.15)


def test_line_along_the_photos_edge_is_measured():
    photo = line_photo(rows=slice(3, 6))                                 # 3 px of wall above it
    figures = measure_mask(band(rows=slice(0, 10)), "crack", image=photo)  # a band cut by the edge
    assert figures.width_mean_px == pytest.approx(3.0, abs=0.2)


def test_photo_decoded_reduced_gives_widths_in_the_files_pixels():
    full = measure_mask(band(), "crack", image=line_photo())
    reduced = measure_mask(band(), "crack", image=line_photo(), scale=2.0)     # the same photo, decoded at half size
    assert reduced.width_mean_px == pytest.approx(2 * full.width_mean_px)
    assert reduced.mask_width_max_px == pytest.approx(2 * full.mask_width_max_px)
    assert reduced.width_profile["width_px"] == pytest.approx(2 * full.width_profile["width_px"], abs=0.01)


# -- without a photo, and nothing to measure -------------------------------------------------------
def test_without_a_photo_the_widths_are_the_masks_and_say_so():
    figures = measure_mask(band(), "crack")
    assert figures.width_source == "mask" and figures.to_dict()["width_source"] == "mask"
    assert figures.width_max_px == figures.mask_width_max_px == pytest.approx(11.0, abs=0.01)
    assert figures.width_mean_px == figures.mask_width_mean_px
    assert figures.width_profile is None


@pytest.mark.parametrize("image", [None, line_photo()])
def test_empty_mask_has_no_widths(image):
    figures = measure_mask(np.zeros((60, 200), dtype=bool), "crack", image=image)
    assert figures.width_max_px is None and figures.width_mean_px is None and figures.mask_width_max_px is None
    assert figures.width_source == ("mask" if image is None else "photo")


def test_mask_over_a_plain_wall_has_no_photo_width():
    plain = np.full((60, 200, 3), 190, dtype=np.uint8)
    figures = measure_mask(band(), "crack", image=plain)
    assert figures.width_max_px is None and figures.width_mean_px is None and figures.width_profile is None
    assert figures.mask_width_max_px == pytest.approx(11.0, abs=0.01)                # the band is still measured


def test_area_and_joint_sets_keep_their_figures():
    assert "width_source" not in measure_mask(band(), "area", image=line_photo()).to_dict()
    joint = measure_mask(band(), "joint", image=line_photo())
    without_photo = measure_mask(band(), "joint")
    # A joint's widths come from the taping band refined on the photo (drywallqa.qa.taping_band),
    # never from the crack profiles; the mask's own widths stay as mask_width_*.
    assert joint.mask_width_mean_px == without_photo.width_mean_px and joint.width_profile is None


@pytest.mark.parametrize("image", [np.zeros((60, 200), np.uint8), np.zeros((30, 200, 3), np.uint8),
                                   np.zeros((60, 200, 3), np.float32)])
def test_photo_of_another_shape_or_type_is_refused(image):
    with pytest.raises(ConfigError, match="image must be RGB uint8 of the mask's size"):
        measure_mask(band(), "crack", image=image)


# -- rules and inspection use the photo width ------------------------------------------------------
def test_rules_judge_the_photo_width():
    rules = QARules.from_dict({"classes": {"crack": {"figures": "crack", "fail_if": {"width_max_px": {"above": 5}}}}})
    with_photo = inspect_mask(band(), "segment crack", image=line_photo(), qa_rules=rules)
    without = inspect_mask(band(), "segment crack", qa_rules=rules)
    assert with_photo.verdict.verdict == "pass" and without.verdict.verdict == "fail"
    assert with_photo.to_dict()["width_profile"]["method"] in ("half-depth", "darkness")
    assert "width_profile" not in without.to_dict()


def test_rules_may_name_the_mask_widths():
    rules = QARules.from_dict({"classes": {"crack": {"figures": "crack",
                                                     "fail_if": {"mask_width_max_px": {"above": 10}}}}})
    assert inspect_mask(band(), "segment crack", image=line_photo(), qa_rules=rules).verdict.reasons == (
        "mask_width_max_px 11 > 10",)


def test_trimmed_mean_and_high_percentile_ignore_a_few_outliers():
    widths = np.array([2.0] * 96 + [0.1, 0.1, 40.0, 40.0])
    assert summarise_widths(widths) == (2.0, 2.0)
    assert summarise_widths(np.zeros(0)) == (None, None)
