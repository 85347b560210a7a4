"""Tiling (``tile="auto"|"off"|PX``): plans, exact blending, no seams, 640 px photos untouched, the
setting checked everywhere it enters, and runs that record the tiles used."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from drywallqa.errors import ConfigError
from drywallqa.inference import BatchedPredictor, check_tile, load_predictor, plan_tiles
from drywallqa.inference.tiling import (
    MAX_TILES,
    MIN_OVERLAP,
    TRAINING_MM_PER_PX,
    TRAINING_PHOTO_PX,
    detail_factor,
    one_tile_plan,
    tile_starts,
)
from drywallqa.processing import resize_image, resize_to_model_input, sigmoid, upsample_logits


class PixelFunction(BatchedPredictor):
    """Logits a function of each pixel (the red channel), the confidence of the tile's mean:
    translation-equivariant, so tiling it must change nothing."""

    name = "pixel-function"

    def __init__(self, image_size: int = 64, batch_size: int = 4, tile="auto"):
        self.image_size, self.batch_size, self.tile = image_size, batch_size, tile
        self.calls: list[int] = []

    def forward_batch(self, images, prompts):
        self.calls.append(len(images))
        logits = (images[..., 0].astype(np.float32) - 128) / 16
        return logits, logits.mean(axis=(1, 2))


class TileIndex(BatchedPredictor):
    """Each tile's logits are one constant: the tile's rank in the call, so neighbours disagree."""

    name = "tile-index"
    image_size = 64

    def forward_batch(self, images, prompts):
        values = np.arange(len(images), dtype=np.float32) * 4
        return np.broadcast_to(values[:, None, None], images.shape[:3]).copy(), np.zeros(len(images), np.float32)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("value, expected", [
    ("auto", "auto"), ("off", "off"), (" AUTO ", "auto"), ("640", 640), (" 64 ", 64), (64, 64), (np.int64(900), 900),
    ("10", None), (10, None), (63, None), ("abc", None), ("-80", None), ("64.5", None), (64.0, None), (True, None),
    (None, None), ("", None),
])
def test_the_tile_setting_is_checked_in_one_place(value, expected):
    if expected is None:
        with pytest.raises(ConfigError, match=r"^--tile must be auto, off or a tile side in pixels of at least 64"):
            check_tile(value, "--tile")
    else:
        assert check_tile(value) == expected


def test_plans_follow_size_shape_scale_and_setting():
    sharp = noise(1280, 1280)
    assert plan_tiles(noise(640, 640), 448).stretched  # a training-size photo is one stretched tile
    assert plan_tiles(noise(480, 640), 448).stretched  # 4:3, as the training photos were before stretching
    mosaic = plan_tiles(sharp, 448)
    assert (len(mosaic), mosaic.tile_px, mosaic.scale_from, mosaic.canvas_shape) == (9, 640, "detail", (896, 896))
    strip = plan_tiles(noise(640, 2560), 448)
    assert strip.canvas_shape == (448, 1792) and len(strip) == 6 and strip.tile_px == 640
    thin = plan_tiles(noise(300, 4000), 448)  # a tile never longer than the photo's short side
    assert thin.tile_px == 300 and thin.canvas_shape[0] == 448
    assert plan_tiles(sharp, 448, "off").stretched and len(plan_tiles(sharp, 448, "off")) == 1
    assert plan_tiles(sharp, 448, 320).tile_px == 320
    # With a scale, a tile covers a training photo's field of view: at the training photos' scale
    # 640 px, at 6x finer a whole 12 MP phone photo is one tile again.
    at_training_scale = plan_tiles(sharp, 448, mm_per_px=TRAINING_MM_PER_PX)
    assert at_training_scale.tile_px == pytest.approx(TRAINING_PHOTO_PX) and at_training_scale.scale_from == "mm_per_px"
    assert plan_tiles(np.zeros((3000, 4000, 3), np.uint8), 448, mm_per_px=TRAINING_MM_PER_PX / 6).stretched
    with pytest.raises(ConfigError, match="mm_per_px"):
        plan_tiles(sharp, 448, mm_per_px=-1.0)


def test_tiles_overlap_cover_and_stay_under_the_limit():
    for length in (448, 449, 700, 1792, 5000):
        starts = tile_starts(length, 448)
        assert starts[0] == 0 and starts[-1] == max(0, length - 448)
        assert all(b - a <= 448 * (1 - MIN_OVERLAP) + 1 for a, b in zip(starts, starts[1:]))
    capped = plan_tiles(np.zeros((4000, 4000, 3), np.uint8), 448, 64)  # 64 px tiles: thousands of them
    assert len(capped) <= MAX_TILES and capped.scale_from == "tile px (max tiles)"


def test_detail_factor_finds_an_enlargement():
    sharp = cv2.GaussianBlur(noise(400, 400), (0, 0), 0.6)
    assert detail_factor(sharp) == 1.0
    enlarged = cv2.resize(sharp, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert detail_factor(enlarged) >= 2.0
    plan = plan_tiles(enlarged, 448)  # judged about as the photo it was enlarged from
    assert plan.stretched and plan.scale_from == "one tile" and plan.detail_factor >= 2.0


@pytest.mark.parametrize("tile", ["auto", 64, 100])
def test_tiling_a_pixel_function_changes_nothing(tile):
    predictor = PixelFunction(tile=tile)
    image = noise(300, 700, seed=1)
    result = predictor.predict(image, "segment crack", return_probabilities=True)
    plan = predictor.prepare(image).plan
    assert len(plan) > 1 and result.extra["tiling"]["tiles"] == len(plan)
    # The same function of the photo resized to the tiles' scale, untiled: equal up to float rounding.
    canvas = resize_image(image, *plan.canvas_shape)
    expected = upsample_logits((canvas[..., 0].astype(np.float32) - 128) / 16, *image.shape[:2])
    np.testing.assert_allclose(result.probabilities, sigmoid(expected), atol=1e-5)
    assert result.mask.shape == image.shape[:2]


def test_blending_has_no_seams():
    predictor = TileIndex()
    predictor.batch_size = 64
    image = noise(64, 600)
    inputs = predictor.prepare(image, tile=64)  # one row of tiles, each 4 above its left neighbour
    logits, confidence = predictor.forward_batch(inputs.pixels, ["p"] * len(inputs))
    from drywallqa.inference.tiling import blend_tiles

    blended, _ = blend_tiles(inputs.plan, logits, confidence)
    # Pasting tiles side by side would jump by a neighbour's difference (4) at each border; blended,
    # every step between neighbouring pixels is a small share of it.
    assert len(inputs) > 5 and inputs.plan.canvas_shape == (64, 600)
    assert np.abs(np.diff(blended, axis=1)).max() < 0.25 * 4 and np.abs(np.diff(blended, axis=0)).max() < 1e-4


def test_a_640_photo_is_judged_exactly_as_untiled():
    image = noise(640, 640, seed=3)
    predictor = PixelFunction(image_size=448)
    auto = predictor.predict(image, "segment crack", return_probabilities=True)
    off = predictor.predict(image, "segment crack", return_probabilities=True, tile="off")
    np.testing.assert_array_equal(auto.mask, off.mask)
    np.testing.assert_array_equal(auto.probabilities, off.probabilities)
    assert auto.confidence == off.confidence
    assert auto.extra["tiling"] == {"tile": "auto", "tiles": 1, "tile_px": None, "scale_from": "one tile",
                                    "detail_factor": None}
    # Untiled is what every photo got before tiling: stretched to the model's square.
    logits = (resize_to_model_input(image, 448)[..., 0].astype(np.float32) - 128) / 16
    np.testing.assert_allclose(off.probabilities, sigmoid(upsample_logits(logits, 640, 640)), atol=1e-6)


def test_tiles_of_several_photos_share_batches_and_a_photo_is_cut_once():
    predictor = PixelFunction(batch_size=4)
    big, small = noise(300, 700, seed=4), noise(64, 64, seed=5)
    tiles = len(predictor.prepare(big).plan)
    results = predictor.predict_batch([big, big, small], ["a", "b", "a"])
    assert sum(predictor.calls) == 2 * tiles + 1 and max(predictor.calls) <= 4
    alone = PixelFunction().predict(big, "a")
    np.testing.assert_array_equal(results[0].mask, alone.mask)
    assert [r.extra["tiling"]["tiles"] for r in results] == [tiles, tiles, 1]


def test_confidence_counts_the_tiles_that_found_the_mask():
    from drywallqa.inference.tiling import blend_tiles

    plan = plan_tiles(np.zeros((64, 160, 3), np.uint8), 64, 64)
    found = np.full((len(plan), 64, 64), -20.0, np.float32)
    found[0] = 20.0  # only the first tile finds a mask
    confidences = np.array([3.0] + [-3.0] * (len(plan) - 1), np.float32)
    assert sigmoid(np.float32(blend_tiles(plan, found, confidences)[1])) == pytest.approx(sigmoid(np.float32(3.0)), abs=1e-3)
    nothing = np.full((len(plan), 64, 64), -20.0, np.float32)  # no tile finds anything: the plain mean
    mean = float(np.mean(sigmoid(confidences)))
    assert sigmoid(np.float32(blend_tiles(plan, nothing, confidences)[1])) == pytest.approx(mean, abs=1e-3)
    one = one_tile_plan((64, 64), 64)
    assert blend_tiles(one, found[:1], confidences[:1])[1] == 3.0  # one tile: its own logit, untouched


def test_load_predictor_checks_the_tile_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="tile must be auto, off"):
        load_predictor(str(tmp_path / "no-such-model"), tile="abc")
    with pytest.raises(ConfigError, match="tile must be"):
        PixelFunction().predict(noise(64, 64), "p", tile=10)


@pytest.mark.parametrize("command", ["predict", "serve", "watch"])
@pytest.mark.parametrize("value", ["10", "abc"])
def test_a_bad_tile_flag_is_one_line_and_exit_2_before_the_model_loads(command, value, tmp_path, capsys, monkeypatch):
    import drywallqa.inference as inference
    import drywallqa.serving.video_source as video_source
    from drywallqa.cli import main
    from drywallqa.files import write_image

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(inference, "load_predictor", never)
    monkeypatch.setattr(video_source, "VideoSource", lambda *args, **kwargs: type("Source", (), {"close": lambda self: None})())
    photo = write_image(tmp_path / "wall.jpg", noise(64, 64))
    argv = {"predict": ["predict", str(photo), "--prompt", "segment crack", "--out", str(tmp_path / "out")],
            "serve": ["serve"], "watch": ["watch", "0", "--prompt", "segment crack", "--out", str(tmp_path / "w")]}[command]
    if command == "serve":
        pytest.importorskip("fastapi")
        pytest.importorskip("uvicorn")
    assert main([*argv, "--tile", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --tile must be auto, off") and repr(value) in err


def test_predict_records_the_tiles_each_photo_took(tmp_path):
    from drywallqa.files import write_image
    from drywallqa.serving import predict_images

    write_image(tmp_path / "photos" / "small.png", noise(64, 64, seed=6))
    write_image(tmp_path / "photos" / "strip.png", noise(120, 900, seed=7))
    run = predict_images([tmp_path / "photos"], ["segment crack"], tmp_path / "out", PixelFunction(), coco=False,
                         overlays=False)
    tiles = {record["image"].rsplit("/", 1)[-1]: record["tiling"]["tiles"] for record in run.records}
    assert tiles["small.png"] == 1 and tiles["strip.png"] > 1
    lines = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(line["tiling"]["tiles"] for line in lines) == sorted(tiles.values())
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["tile"] == "auto"


def test_watch_smooths_tiled_frames_with_one_plan():
    from drywallqa.serving.video_frames import TemporalSmoother

    predictor = PixelFunction(batch_size=3)
    smoother = TemporalSmoother(predictor, ["segment crack", "segment taping area"], smoothing=0.5)
    frames = [noise(120, 400, seed=s) for s in range(3)]
    results = smoother(frames)
    assert len(smoother.plan) > 1 and [len(r) for r in results] == [2, 2, 2]
    assert results[0][0].mask.shape == (120, 400) and results[-1][1].extra["tiling"]["tiles"] == len(smoother.plan)
    off = TemporalSmoother(predictor, ["segment crack"], smoothing=1.0, tile="off")
    off(frames[:1])
    assert off.plan.stretched


def test_the_micro_batcher_sends_tiles_and_blends_them_back():
    from drywallqa.serving.batching import MicroBatcher

    predictor = PixelFunction(batch_size=4)
    big, small = noise(300, 700, seed=8), noise(64, 64, seed=9)
    expected = predictor.predict_batch([big, small], ["a", "a"])
    with MicroBatcher(predictor, max_batch=4, max_queued=2) as batcher:  # fewer queue places than tiles: they wait
        results = batcher.predict([big, small], ["a", "a"])
        off = batcher.predict([big], ["a"], tile="off")
    for ours, theirs in zip(results, expected):
        np.testing.assert_array_equal(ours.mask, theirs.mask)
        assert ours.extra["tiling"] == theirs.extra["tiling"]
    assert off[0].extra["tiling"]["tiles"] == 1 and max(predictor.calls) <= 4


def test_the_http_api_takes_a_tile_field_and_says_what_it_used():
    pytest.importorskip("fastapi", reason="the HTTP service needs FastAPI (pip install 'drywallqa[serve]')")
    pytest.importorskip("multipart", reason="FastAPI forms need python-multipart")
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from drywallqa.serving import create_app

    buffer = io.BytesIO()
    Image.fromarray(noise(120, 900, seed=10)).save(buffer, format="PNG")
    client = TestClient(create_app(PixelFunction(), timeout_s=30))

    def segment(**fields):
        return client.post("/v1/segment", data={"prompt": "segment crack", **fields},
                           files={"image": ("strip.png", buffer.getvalue(), "image/png")})

    assert segment().json()["image"]["tiling"]["tiles"] > 1
    assert segment(tile="off").json()["image"]["tiling"]["tiles"] == 1
    refused = segment(tile="10")
    assert refused.status_code == 422 and "tile must be auto, off" in refused.json()["error"]["message"]
