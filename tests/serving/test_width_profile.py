"""The measured crack profile in the HTML report (drywallqa.serving.width_profile)."""

from __future__ import annotations

import re

import pytest
from serving_helpers import DarkPixelPredictor, dark_line_image

from drywallqa.files import write_image
from drywallqa.serving import predict_images, write_report
from drywallqa.serving.results import read_results
from drywallqa.serving.width_profile import width_profile_svg

PROFILE = {"offsets_px": [-3, -2, -1, 0, 1, 2, 3], "samples": [200, 200, 120, 60, 120, 200, 200], "wall": [200, 198],
           "depth": 140, "edges_px": [-1.1, 1.1], "width_px": 2.2, "method": "half-depth", "x_px": 40, "y_px": 31}


def test_svg_draws_the_samples_the_wall_and_the_half_depth_width():
    svg = width_profile_svg(PROFILE)
    assert svg.startswith('<svg class="profile"') and svg.endswith("</svg>")
    assert len(re.search(r'<polyline points="([^"]+)"', svg).group(1).split()) == len(PROFILE["samples"])
    assert "stroke-dasharray" in svg                                            # the wall level
    assert "width 2.2 px (half-depth) at x 40, y 31" in svg


@pytest.mark.parametrize("profile", [None, {}, {**PROFILE, "samples": [1, 2]}, {**PROFILE, "depth": float("nan")},
                                     {**PROFILE, "wall": "high"}])
def test_no_or_malformed_profile_draws_nothing(profile):
    assert width_profile_svg(profile) == ""


def test_report_shows_the_profile_of_a_crack_measured_on_the_photo(tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "line.png", dark_line_image())                          # a 3 px dark line
    out = tmp_path / "out"
    predict_images([photos], ["segment crack"], out, DarkPixelPredictor())
    (record,) = read_results(out)[0]
    assert record["figures"]["width_source"] == "photo" and record["width_profile"]["width_px"] == pytest.approx(3, abs=0.1)
    text = write_report(out, tmp_path / "report.html").read_text(encoding="utf-8")
    assert text.count('<svg class="profile"') == 1 and "width 3" in text


def test_resumed_pair_reads_the_photo_again_or_says_the_width_is_the_masks(tmp_path):
    photos = tmp_path / "photos"
    write_image(photos / "line.png", dark_line_image())
    out = tmp_path / "out"
    predict_images([photos], ["segment crack"], out, DarkPixelPredictor())
    (first,) = read_results(out)[0]
    predict_images([photos], ["segment crack"], out, DarkPixelPredictor())        # resumed: measured again
    (again,) = read_results(out)[0]
    assert again == first
    (photos / "line.png").write_bytes(b"gone")                                       # the photo can no longer be read
    predict_images([photos / "line.png"], ["segment crack"], out, DarkPixelPredictor())
    (later,) = read_results(out)[0]
    assert later["figures"]["width_source"] == "mask" and "width_profile" not in later
    assert later["figures"]["width_max_px"] == later["figures"]["mask_width_max_px"]
