"""The on-device page's JS ports of the processing and the QA domain (static/processing.js,
static/qa.js, and the photo measures static/crack_width.js, ridges.js, joint_lines.js,
taping_band.js) against the Python they port, run in Node: resizing to the model input, logits to a
mask, the skeleton, the distance transform, the float32 resizes of the reduced copies, the bounded
line search against every column's sum, the figures (crack widths across the dark line on the
photo, taping figures on the band refined from it), the rules' verdicts and reasons.

Node runs the very files the browser loads; skips without ``node`` on PATH.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
from importlib import resources

import numpy as np
import pytest

from drywallqa.data.synthetic import render_sample_image
from drywallqa.processing import logit_threshold, nhwc_uint8_to_nchw_float, resize_to_model_input, upsample_logits
from drywallqa.qa import QARules, measure_mask
from drywallqa.qa.rules import Rule, _fmt

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the JS port runs in node here)")

STATIC = resources.files("drywallqa.serving").joinpath("static")
# Reads one JSON job from stdin, runs qa.js's functions on it, prints JSON; arrays travel as base64.
HARNESS = r"""
const P = require(`${process.argv[1]}/processing.js`), QA = require(`${process.argv[1]}/qa.js`);
const TB = require(`${process.argv[1]}/taping_band.js`), J = require(`${process.argv[1]}/joint_lines.js`);
const bytes = (b64) => new Uint8Array(Buffer.from(b64, "base64"));
const floats = (b64) => { const b = Buffer.from(b64, "base64"); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
const out = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
let input = "";
process.stdin.on("data", (c) => { input += c; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((job) => {
    switch (job.fn) {
      case "modelInput": return out(P.modelInput(bytes(job.rgba), job.width, job.height, job.size));
      case "maskFromLogits": return out(P.maskFromLogits(floats(job.logits), job.size, job.width, job.height, job.threshold));
      case "skeletonize": return out(QA.skeletonize(bytes(job.mask), job.width, job.height));
      case "distanceTransform": return out(QA.distanceTransform(bytes(job.mask), job.width, job.height));
      case "measure": {
        const options = job.rgba ? { ...job.options, image: { rgba: bytes(job.rgba) } } : job.options;
        const figures = QA.measureMask(bytes(job.mask), job.width, job.height, job.figure_set, options);
        return { figures: QA.figuresDict(figures), verdict: QA.judge(job.rules, job.class_name, figures) };
      }
      case "band": {
        const band = TB.refineTapingBand({ rgba: bytes(job.rgba) }, bytes(job.mask), job.width, job.height, job.options);
        return { mask: out(band.mask), lines: band.lines.map((l) => [l.kind, l.offsets[1] - l.offsets[0]]),
                 counts: [band.refined, band.kept, band.left_out] };
      }
      case "format": return job.values.map(QA.formatFigure);
      case "resizeFloat": {
        const area = P.resizeAreaFloat(floats(job.image), job.width, job.height, job.small[0], job.small[1]);
        return [out(area), out(P.resizeLinearFloat(area, job.small[0], job.small[1], job.width, job.height))];
      }
      case "lineSearch": {  // every column's sum, and the bounded search for their largest
        const [sums, , side] = J.radon(floats(job.image), job.width, job.height, job.angles);
        let best = 0;
        for (let i = 1; i < sums.length; i++) if (sums[i] > sums[best]) best = i;
        return [best, J.radonArgmax(floats(job.image), job.width, job.height, job.angles)[0], side];
      }
      default: throw new Error(job.fn);
    }
  });
  process.stdout.write(JSON.stringify(results));
});
"""


def run_js(jobs: list[dict]) -> list:
    with resources.as_file(STATIC) as path:
        proc = subprocess.run([NODE, "-e", HARNESS, str(path)], input=json.dumps(jobs), capture_output=True,
                              text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def from_b64(text: str, dtype, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape)


def rgba(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)


def sample_masks() -> list[tuple[str, np.ndarray]]:
    """Crack and joint masks of synthetic scenes (their exact masks), and random blobs."""
    masks = []
    for seed in range(6):
        for dataset, kind in (("cracks", "crack"), ("drywall-join", "joint")):
            scene = render_sample_image(dataset, seed, size=160 + 24 * seed)
            masks.append((kind, np.any(np.stack(scene.masks), axis=0) if scene.masks else np.zeros((8, 8), bool)))
    import cv2

    rng = np.random.default_rng(7)
    for size in (40, 90):
        noise = cv2.GaussianBlur(rng.random((size, size + 13)).astype(np.float32), (0, 0), 2.0)
        masks.append(("crack", noise > np.quantile(noise, 0.7)))
    masks.append(("crack", np.zeros((30, 40), bool)))
    return masks


def test_resizing_to_the_model_input_matches_opencv():
    jobs, expected = [], []
    for height, width, size in ((640, 640, 448), (480, 640, 448), (300, 200, 448), (640, 300, 448), (96, 96, 64),
                                (896, 896, 448), (896, 1344, 448)):  # whole factors: OpenCV's fast area path
        image = render_sample_image("cracks", height + width, size=max(height, width)).image[:height, :width].copy()
        jobs.append({"fn": "modelInput", "rgba": b64(rgba(image)), "width": width, "height": height, "size": size})
        expected.append(nhwc_uint8_to_nchw_float(resize_to_model_input(image, size)[None])[0])
    for index, (got, want) in enumerate(zip(run_js(jobs), expected)):
        got = from_b64(got, np.float32, want.shape)
        # Within one grey level (OpenCV's vectorised rounding), nearly everywhere exact.
        assert np.abs(got - want).max() <= 1.5 / 255, index
        assert np.mean(got == want) > 0.99, (index, np.mean(got == want))


def test_logits_to_mask_matches_the_predictor():
    rng = np.random.default_rng(3)
    jobs, expected = [], []
    for size, width, height, threshold in ((448, 640, 640, 0.4), (64, 100, 75, 0.2), (64, 64, 64, 0.5), (32, 20, 50, 0.7)):
        import cv2

        logits = cv2.GaussianBlur(rng.normal(0, 3, (size, size)).astype(np.float32), (0, 0), 3.0) * 4
        jobs.append({"fn": "maskFromLogits", "logits": b64(logits), "size": size, "width": width, "height": height,
                     "threshold": threshold})
        expected.append(upsample_logits(logits, height, width) > logit_threshold(threshold))
    for got, want in zip(run_js(jobs), expected):
        got = from_b64(got, np.uint8, want.shape).astype(bool)
        assert np.mean(got != want) < 1e-4  # float rounding only at pixels on the threshold


def test_skeleton_and_distance_match_skimage_and_opencv():
    import cv2
    from skimage.morphology import skeletonize

    masks = [mask for _, mask in sample_masks()]
    jobs = [{"fn": fn, "mask": b64(np.pad(m, 1).astype(np.uint8) if fn == "distanceTransform" else m.astype(np.uint8)),
             "width": m.shape[1] + (2 if fn == "distanceTransform" else 0),
             "height": m.shape[0] + (2 if fn == "distanceTransform" else 0)}
            for m in masks for fn in ("skeletonize", "distanceTransform")]
    results = run_js(jobs)
    for index, mask in enumerate(masks):
        skeleton = from_b64(results[2 * index], np.uint8, mask.shape).astype(bool)
        assert np.array_equal(skeleton, skeletonize(mask)), f"mask {index}"
        padded = np.pad(mask, 1).astype(np.uint8)
        distance = from_b64(results[2 * index + 1], np.float32, padded.shape)
        np.testing.assert_allclose(distance, cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
                                   atol=1e-4, err_msg=f"mask {index}")


def test_float_resizes_match_opencv():
    """The reduced copies of the taping band's large scales: INTER_AREA as OpenCV's float32 arithmetic
    (whole factors and not), INTER_LINEAR back within a float32 rounding or two."""
    import cv2

    rng = np.random.default_rng(5)
    jobs, expected = [], []
    for height, width, factor in ((64, 64, 2), (120, 333, 2), (257, 190, 4), (301, 301, 8), (96, 130, 4)):
        image = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 1.0)
        small = (round(width / factor), round(height / factor))
        jobs.append({"fn": "resizeFloat", "image": b64(image), "width": width, "height": height, "small": small})
        area = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        expected.append((area, cv2.resize(area, (width, height), interpolation=cv2.INTER_LINEAR)))
    for index, ((area, linear), (want_area, want_linear)) in enumerate(zip(run_js(jobs), expected)):
        np.testing.assert_array_equal(from_b64(area, np.float32, want_area.shape), want_area, err_msg=str(index))
        np.testing.assert_allclose(from_b64(linear, np.float32, want_linear.shape), want_linear, rtol=1e-5, atol=1e-6)


def test_bounded_line_search_finds_the_largest_column_sum():
    """radonArgmax, which sums only the columns its bounds cannot rule out, picks the column argmax
    picks over every sum (the first of equal ones): on ridge responses of sample walls, sparse and
    empty images, ties, and an image with negative values (which takes every sum)."""
    from drywallqa.ridges import ridge_response

    rng = np.random.default_rng(11)
    images = []
    for seed in range(3):
        scene = render_sample_image("drywall-join", seed, size=96 + 32 * seed)
        gray = scene.image.mean(axis=2).astype(np.float32) / 255
        for polarity in ("dark", "bright"):
            images.append(ridge_response(gray, (1.0, 2.0, 4.0), polarity))
    sparse = np.zeros((70, 90), np.float32)
    sparse[rng.integers(0, 70, 40), rng.integers(0, 90, 40)] = rng.random(40, dtype=np.float32)
    ties = np.zeros((40, 40), np.float32)
    ties[:, 10] = ties[:, 30] = 1.0
    images += [sparse, ties, np.zeros((30, 20), np.float32), rng.normal(0, 1, (50, 60)).astype(np.float32)]
    coarse, fine = list(np.arange(0.0, 180.0, 2.0)), list(np.arange(40.0, 44.01, 0.25))
    jobs = [{"fn": "lineSearch", "image": b64(image), "width": image.shape[1], "height": image.shape[0], "angles": angles}
            for image in images for angles in (coarse, fine)]
    for index, (every, bounded, _) in enumerate(run_js(jobs)):
        assert bounded == every, index


def test_figures_and_verdicts_match_python():
    rules = QARules.default()
    from drywallqa.serving.webapp import qa_rules_dict

    jobs, expected = [], []
    for index, (kind, mask) in enumerate(sample_masks()):
        class_name = {"crack": "crack", "joint": "taping_area"}[kind]
        figure_set = rules.figure_set(class_name)
        for mm_per_px, scale in ((None, 1.0), (0.5, 1.0), (0.8, 2.0)):
            options = {"mmPerPx": mm_per_px, "confidence": 0.61234, "minComponentAreaPx": 10, "scale": scale}
            jobs.append({"fn": "measure", "mask": b64(mask.astype(np.uint8)), "width": mask.shape[1],
                         "height": mask.shape[0], "figure_set": figure_set, "options": options,
                         "rules": qa_rules_dict(rules), "class_name": class_name})
            figures = measure_mask(mask, figure_set, mm_per_px=mm_per_px, confidence=0.61234, scale=scale)
            expected.append((index, figures.to_dict(), rules.judge(class_name, figures).to_dict()))
    for got, (index, figures, verdict) in zip(run_js(jobs), expected):
        assert got["figures"].keys() == figures.keys(), index
        for name, value in figures.items():
            if value is None or isinstance(value, str):  # width_source is a word: "mask" on the page
                assert got["figures"][name] == value, (index, name)
            else:
                assert got["figures"][name] == pytest.approx(value, rel=1e-4, abs=0.011), (index, name)
        assert got["verdict"]["verdict"] == verdict["verdict"], index
        assert got["verdict"]["checked"] == verdict["checked"], index
        assert got["verdict"]["severity"] == pytest.approx(verdict["severity"], rel=1e-3), index
        assert len(got["verdict"]["reasons"]) == len(verdict["reasons"]), index


def photo_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Photos with their crack or taping masks: synthetic walls (the exact masks, and the masks grown
    as a model's band is wider than the crack), the docstrings' rendered cases, a wall whose padding
    and cutout are void, and a photo over the taping band's working side (refined on a reduced copy)."""
    import cv2

    cases = []
    for seed in range(4):
        for dataset, kind in (("cracks", "crack"), ("drywall-join", "joint")):
            scene = render_sample_image(dataset, seed, size=200 + 40 * seed)
            if scene.masks:
                mask = np.any(np.stack(scene.masks), axis=0)
                cases.append((kind, scene.image, mask))
                if kind == "crack":
                    cases.append((kind, scene.image, cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)))
    bar = np.zeros((20, 120), bool)
    bar[8:13, 10:110] = True
    photo = np.full((20, 120, 3), 200, np.uint8)
    photo[9:12, 10:110] = 60
    cases.append(("crack", photo, bar))
    seam = np.full((200, 200, 3), 150, np.uint8)
    seam[:, 99:101] = 60
    broad = np.zeros((200, 200), bool)
    broad[:, 40:160] = True
    cases.append(("joint", seam, broad))
    blob = broad.copy()
    blob[10:30, 170:190] = True                # a second component without a joint: left out of the band
    cases.append(("joint", seam, blob))
    wall = np.clip(np.random.default_rng(4).normal(150, 2, (120, 160, 3)), 0, 255).astype(np.uint8)
    cases.append(("joint", wall, broad[:120, :160]))  # no joint anywhere: the mask is kept as predicted
    scene = render_sample_image("drywall-join", 5, size=320)
    padded = scene.image.copy()
    padded[:60, :60] = 0                       # a rotated export's black corner
    padded[200:260, 200:260] = 40              # a dark grey cutout square
    cases.append(("joint", padded, np.any(np.stack(scene.masks), axis=0)))
    for width in (1100, 2048):                 # a bright compound band on a photo over 1024 px wide
        wide = np.full((260, width, 3), 170, np.uint8)
        wide[:, 530:560] = 215
        wide = cv2.GaussianBlur(wide, (0, 0), 1.5)
        wide_mask = np.zeros((260, width), bool)
        wide_mask[20:240, 470:640] = True
        cases.append(("joint", wide, wide_mask))
    return cases


def test_photo_widths_and_taping_band_match_python():
    """Crack widths read on the photo and taping figures on the band refined from it: the same as
    measure_mask's with the image (width_source "photo"), widths and lengths within 1 %."""
    from drywallqa.qa.taping_band import refine_taping_band

    jobs, expected = [], []
    for kind, image, mask in photo_cases():
        for scale in (1.0, 2.0):
            options = {"mmPerPx": 0.5 if scale > 1 else None, "minComponentAreaPx": 10, "scale": scale}
            jobs.append({"fn": "measure", "mask": b64(mask.astype(np.uint8)), "rgba": b64(rgba(image)),
                         "width": mask.shape[1], "height": mask.shape[0], "figure_set": kind, "options": options,
                         "rules": {"classes": {}}, "class_name": None})
            expected.append(measure_mask(mask, kind, image=image, mm_per_px=options["mmPerPx"], scale=scale).to_dict())
        if kind == "joint":
            jobs.append({"fn": "band", "mask": b64(mask.astype(np.uint8)), "rgba": b64(rgba(image)),
                         "width": mask.shape[1], "height": mask.shape[0], "options": {"mmPerPx": None}})
            expected.append(refine_taping_band(image, mask))
    sources, outcomes = set(), set()
    for index, (got, want) in enumerate(zip(run_js(jobs), expected)):
        if not isinstance(want, dict):  # the band itself: the same joint lines and pixels
            assert [kind for kind, _ in got["lines"]] == [line.kind for line in want.lines], index
            np.testing.assert_allclose([w for _, w in got["lines"]], [line.width_px for line in want.lines], rtol=0.01)
            assert got["counts"] == [want.refined, want.kept, want.left_out], index
            outcomes |= {name for name, count in zip(("refined", "kept", "left out"), got["counts"]) if count}
            outcomes |= {kind for kind, _ in got["lines"]}
            band = from_b64(got["mask"], np.uint8, want.mask.shape).astype(bool)
            assert np.sum(band != want.mask) <= 0.01 * max(want.mask.sum(), 1), index
            continue
        got = got["figures"]
        assert got.keys() == want.keys(), index
        sources.add(want["width_source"])
        for name, value in want.items():
            if value is None or isinstance(value, str):
                assert got[name] == value, (index, name)
            else:
                assert got[name] == pytest.approx(value, rel=0.01, abs=0.011), (index, name, got[name], value)
    assert sources == {"photo"}
    assert outcomes == {"refined", "kept", "left out", "seam", "compound"}  # every branch of the band met


def test_verdict_states_and_reasons_match_python():
    """Every verdict state and reason of the rules, on figures made to hit each branch."""
    rules = QARules.from_dict({"measurement": {"min_component_area_px": 10}, "classes": {
        "crack": {"figures": "crack", "defect": True, "fail_if_px": {"longest_px": {"above": 30}}},
        "taping_area": {"figures": "joint", "min_area_percent": 1.0, "fail_if_mm": {"width_mean_mm": {"outside": [50, 350]}}},
        "stain": {"figures": "area", "required": True, "min_area_percent": 5.0},
        "hole": {"figures": "area", "required": True, "fail_if": {"components": {"above": 0}}},
    }})
    from drywallqa.serving.webapp import qa_rules_dict

    bar = np.zeros((60, 120), bool)
    bar[28:33, 10:110] = True  # 100 x 5 px: a long crack, a narrow band, 6.9 % of the photo
    dot = np.zeros((60, 120), bool)
    dot[5:9, 5:9] = True  # 16 px: found, but under 1 % and 5 %
    cases = [(bar, "crack", None), (np.zeros_like(bar), "crack", None), (bar, "taping_area", 0.4),
             (bar, "taping_area", 20.0), (dot, "taping_area", None), (dot, "stain", None),
             (np.zeros_like(bar), "stain", None), (bar, "hole", None), (bar, "mould", None), (bar, None, None)]
    jobs, expected = [], []
    for mask, class_name, mm_per_px in cases:
        figure_set = rules.figure_set(class_name)
        jobs.append({"fn": "measure", "mask": b64(mask.astype(np.uint8)), "width": 120, "height": 60,
                     "figure_set": figure_set, "options": {"mmPerPx": mm_per_px}, "rules": qa_rules_dict(rules),
                     "class_name": class_name})
        expected.append(rules.judge(class_name, measure_mask(mask, figure_set, mm_per_px=mm_per_px)).to_dict())
    got = [result["verdict"] for result in run_js(jobs)]
    assert got == expected
    assert {v["verdict"] for v in got} == {"pass", "fail", "not found", "unchecked"}


def test_figure_formatting_matches_python():
    values = [0.0, 1.0, 20.0, 61.234, 0.5, 0.123456, 0.00012345, 0.0000123, 999.4, 999.6, 1000.0, 123456.7, 5.0,
              -3.25, 100.0, 12.5, 0.1 + 0.2]
    assert run_js([{"fn": "format", "values": values}])[0] == [_fmt(v) for v in values]
    assert Rule("x", above=20).check(61.2)[2] == "x 61.2 > 20"
    assert math.isfinite(Rule("x", below=1).check(0.0)[1])
