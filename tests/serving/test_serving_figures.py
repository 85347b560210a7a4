"""QA figures on hand-made masks, verdicts, the thresholds file and prompt classes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from drywallqa.errors import ConfigError
from drywallqa.serving import QARules, inspect_mask, measure_mask, prompt_class


def bar(height: int, width: int, rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    return mask


# -- cracks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [1, 3, 5, 7])
def test_straight_crack_has_its_drawn_length_and_width(width):
    mask = bar(60, 300, slice(20, 20 + width), slice(50, 250))          # 200 px long
    figures = measure_mask(mask, "crack", min_component_area_px=1)
    assert figures.components == 1
    assert figures.longest_px == pytest.approx(200, abs=1.0)
    assert figures.length_px == figures.longest_px
    assert figures.width_max_px == pytest.approx(width, abs=0.01)
    assert figures.width_mean_px == pytest.approx(width, abs=0.1)


@pytest.mark.parametrize("figure_set", ["crack", "joint"])
def test_mask_of_a_reduced_photo_is_measured_in_the_files_pixels(figure_set):
    full = measure_mask(bar(80, 600, slice(20, 32), slice(100, 500)), figure_set, mm_per_px=0.5)
    half = measure_mask(bar(40, 300, slice(10, 16), slice(50, 250)), figure_set, mm_per_px=0.5, scale=2.0)
    assert half.area_px == full.area_px and half.area_percent == pytest.approx(full.area_percent)
    for name in ("longest_px", "width_max_px", "width_mean_px"):
        # within the one-pixel rounding of even widths, doubled: never the half a reduced mask has
        assert getattr(half, name) == pytest.approx(getattr(full, name), rel=0.12), name
    assert half.to_dict()["longest_mm"] == pytest.approx(half.longest_px * 0.5, abs=0.001)
    # The noise floor is in the file's pixels too: a 3 px speck of the half-size mask is 12 file pixels.
    speck = bar(40, 300, slice(5, 6), slice(5, 8))
    assert measure_mask(speck, figure_set, scale=2.0, min_component_area_px=10).components == 1
    assert measure_mask(speck, figure_set, min_component_area_px=10).components == 0
    with pytest.raises(ConfigError, match="scale must be a positive number"):
        measure_mask(speck, figure_set, scale=0)


def test_even_widths_are_within_one_pixel():
    figures = measure_mask(bar(40, 200, slice(10, 14), slice(20, 180)), "crack")
    assert abs(figures.width_max_px - 4) <= 1
    assert figures.longest_px == pytest.approx(160, rel=0.01)


@pytest.mark.parametrize("thickness", [1, 3])
def test_diagonal_crack_counts_diagonal_steps_as_sqrt2(thickness):
    mask = np.zeros((300, 300), dtype=np.uint8)
    cv2.line(mask, (50, 50), (250, 250), 1, thickness)
    figures = measure_mask(mask.astype(bool), "crack")
    # The drawn segment spans 200·√2 ≈ 282.8 px between pixel centres (+ up to a pixel at the ends).
    assert figures.longest_px == pytest.approx(200 * math.sqrt(2), rel=0.025)
    assert figures.width_max_px == pytest.approx(thickness, abs=1.0)


def test_millimetre_figures_scale_the_pixel_figures():
    mask = bar(60, 300, slice(20, 23), slice(50, 250))
    figures = measure_mask(mask, "crack", mm_per_px=0.25).to_dict()
    assert figures["longest_mm"] == pytest.approx(figures["longest_px"] * 0.25, abs=0.01)
    assert figures["width_max_mm"] == pytest.approx(0.75, abs=1e-3)
    assert "longest_mm" not in measure_mask(mask, "crack").to_dict()


def test_components_lengths_and_noise():
    mask = bar(100, 300, slice(10, 13), slice(10, 110)) | bar(100, 300, slice(60, 61), slice(100, 150))
    mask[90:92, 290:292] = True                                          # 4 px of noise
    figures = measure_mask(mask, "crack", min_component_area_px=10)
    assert figures.components == 2
    assert figures.component_lengths_px == pytest.approx((100, 50), abs=1.0)
    assert figures.length_px == pytest.approx(150, abs=2.0)
    assert figures.area_px == int(mask.sum())                            # the area keeps the noise
    assert figures.area_percent == pytest.approx(100 * mask.mean())


def test_crack_leaving_the_frame_ends_at_the_frame():
    figures = measure_mask(bar(50, 100, slice(20, 25), slice(0, 100)), "crack")
    assert figures.longest_px == pytest.approx(100, abs=1.0)
    assert figures.width_max_px == pytest.approx(5)


def test_empty_mask_has_zero_length_and_no_width():
    figures = measure_mask(np.zeros((32, 32), dtype=bool), "crack", confidence=0.2)
    assert (figures.components, figures.length_px, figures.longest_px) == (0, 0.0, 0.0)
    assert figures.width_max_px is None and figures.width_mean_px is None
    assert figures.to_dict()["confidence"] == 0.2


# -- joints ---------------------------------------------------------------------------------------
def test_joint_band_length_and_width():
    figures = measure_mask(bar(400, 600, slice(100, 161), slice(50, 550)), "joint")   # 500 × 61 px
    assert figures.longest_px == pytest.approx(500, rel=0.01)
    assert figures.width_mean_px == pytest.approx(61, abs=0.5)
    assert figures.width_max_px == pytest.approx(61, abs=0.5)


def test_crossing_joint_bands_sum_their_arms():
    mask = bar(400, 600, slice(100, 161), slice(50, 550)) | bar(400, 600, slice(20, 380), slice(270, 331))
    figures = measure_mask(mask, "joint")
    assert figures.components == 1
    # 500 + 360 px of band, less the 61 × 61 px square they share.
    assert figures.length_px == pytest.approx(500 + 360 - 61, rel=0.03)
    assert figures.width_mean_px == pytest.approx(61, abs=1)


def test_area_figure_set_has_no_lengths():
    figures = measure_mask(bar(10, 10, slice(0, 5), slice(0, 10)), "area").to_dict()
    assert figures == {"area_percent": 50.0, "area_px": 50, "components": 1, "confidence": None}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"figure_set": "hole"}, "figure_set"),
    ({"mm_per_px": 0.0}, "mm_per_px"),
    ({"mm_per_px": -1.0}, "mm_per_px"),
])
def test_measure_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        measure_mask(np.zeros((4, 4), dtype=bool), **{"figure_set": "crack", **kwargs})


# -- verdicts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "width", "mm_per_px", "verdict", "failed_figures"), [
    (100, 3, 0.1, "pass", []),                              # 10 mm × 0.3 mm
    (300, 3, 0.1, "fail", ["longest_mm"]),                  # 30 mm > 20 mm
    (100, 7, 0.1, "fail", ["width_max_mm"]),                # 0.7 mm > 0.5 mm
    (300, 7, 0.1, "fail", ["longest_mm", "width_max_mm"]),
    (25, 3, None, "pass", []),                              # pixel rules: 25 px ≤ 30 px
    (100, 3, None, "fail", ["longest_px"]),
])
def test_crack_verdicts_with_the_default_thresholds(length, width, mm_per_px, verdict, failed_figures):
    mask = bar(60, 400, slice(20, 20 + width), slice(20, 20 + length))
    inspection = inspect_mask(mask, "segment crack", mm_per_px=mm_per_px)
    assert inspection.class_name == "crack" and inspection.figures.figure_set == "crack"
    assert inspection.verdict.verdict == verdict
    assert [reason.split()[0] for reason in inspection.verdict.reasons] == failed_figures
    assert (inspection.verdict.severity > 1) == (verdict == "fail")


@pytest.mark.parametrize(("band_px", "mm_per_px", "verdict"), [
    (61, 2.0, "pass"),      # 122 mm wide band
    (15, 2.0, "fail"),      # 30 mm: narrower than the tape
    (61, 10.0, "fail"),     # 610 mm: over-mudded
    (61, None, "pass"),     # no scale: found, and no rule applies
])
def test_taping_verdicts_with_the_default_thresholds(band_px, mm_per_px, verdict):
    mask = bar(300, 600, slice(100, 100 + band_px), slice(0, 600))
    inspection = inspect_mask(mask, "segment taping area", mm_per_px=mm_per_px)
    assert inspection.figures.figure_set == "joint"
    assert inspection.verdict.verdict == verdict, inspection.verdict


def test_missing_taping_is_not_found_and_skips_the_width_rule():
    inspection = inspect_mask(np.zeros((100, 100), dtype=bool), "segment joint tape", mm_per_px=1.0)
    assert inspection.verdict.verdict == "not found"
    assert inspection.verdict.checked == ("components", "area_percent")
    assert inspection.verdict.severity == 0.0 and inspection.verdict.reasons == ()


def test_prompt_without_thresholds_is_unchecked():
    inspection = inspect_mask(bar(10, 10, slice(0, 2), slice(0, 10)), "segment mould")
    assert inspection.class_name is None
    assert inspection.verdict.verdict == "unchecked"
    assert inspection.to_dict()["figure_set"] == "area"


def test_user_thresholds_file_overrides_the_defaults(tmp_path):
    path = tmp_path / "strict.yaml"
    path.write_text(
        "measurement: {min_component_area_px: 1}\n"
        "classes:\n"
        "  crack:\n"
        "    figures: crack\n"
        "    fail_if: {components: {above: 0}, confidence: {below: 0.9}}\n"
    )
    qa_rules = QARules.from_yaml(path)
    inspection = inspect_mask(bar(20, 20, slice(5, 6), slice(5, 8)), "segment crack", confidence=0.5, qa_rules=qa_rules)
    assert inspection.verdict.verdict == "fail"
    assert inspection.verdict.reasons == ("components 1 > 0", "confidence 0.5 < 0.9")
    assert inspect_mask(bar(20, 20, slice(5, 6), slice(5, 8)), "segment taping area", qa_rules=qa_rules).verdict.verdict == "unchecked"


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "'classes' mapping"),
    ("classes: {crack: {figures: line}}", "classes.crack.figures"),
    ("classes: {crack: {fail_if: {length: {above: 1}}}}", "unknown figure"),
    ("classes: {crack: {fail_if: {longest_px: {over: 1}}}}", "expected {above: X}"),
    ("classes: {crack: {fail_if: {longest_px: {above: ten}}}}", "expected a number"),
    ("classes: {crack: {fail_if: {longest_px: {outside: [5, 1]}}}}", "LOW <= HIGH"),
    ("classes: {crack: {limits: {}}}", "unknown key"),
    ("measurement: {min_component_area_px: -1}\nclasses: {}", "min_component_area_px"),
    ("classes: [", "not valid YAML"),
])
def test_bad_thresholds_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        QARules.from_yaml(path)
    assert str(path) in str(info.value)


def test_builtin_thresholds_cover_both_classes():
    thresholds = QARules.default()
    assert thresholds.figure_set("crack") == "crack"
    assert thresholds.figure_set("taping_area") == "joint"
    with pytest.raises(ConfigError, match="not found"):
        QARules.load("/no/such/thresholds.yaml")


@pytest.mark.parametrize(("prompt", "expected"), [
    ("segment crack", "crack"),
    ("Segment  Wall-Crack", "crack"),
    ("highlight the cracks in the wall", "crack"),
    ("segment drywall cracks near the window", "crack"),
    ("segment taping area", "taping_area"),
    ("find the tape", "taping_area"),
    ("segment drywall seam", "taping_area"),
    ("segment mould", None),
])
def test_prompt_class(prompt, expected):
    assert prompt_class(prompt) == expected


@pytest.mark.parametrize("figure_set", ["crack", "joint"])
def test_figures_do_not_depend_on_the_empty_margin_around_the_mask(figure_set):
    # Measured on the mask's bounding box: a frame of background around it changes only the area share.
    mask = np.zeros((120, 160), dtype=np.uint8)
    cv2.line(mask, (0, 10), (150, 90), 1, 3)
    cv2.circle(mask, (40, 100), 6, 1, -1)
    framed = np.pad(mask, ((30, 5), (7, 60))).astype(bool)
    inner, outer = measure_mask(mask.astype(bool), figure_set).to_dict(), measure_mask(framed, figure_set).to_dict()
    assert outer.pop("area_percent") < inner.pop("area_percent")
    assert inner == outer
    assert measure_mask(np.zeros((40, 40), dtype=bool), figure_set).components == 0
