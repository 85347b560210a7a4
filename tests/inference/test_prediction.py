"""`Prediction` and `Predictions`: records as predict wrote them before, exact round trips through
results.jsonl, the tables written again from a run read back, and `drywallqa.predict` for notebooks."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import drywallqa
from drywallqa.data.synthetic import render_sample_image
from drywallqa.errors import DataError
from drywallqa.files import read_json, read_photo, write_image
from drywallqa.inference import BatchedPredictor, Prediction, Predictions
from drywallqa.inference.prediction import json_ready
from drywallqa.qa import QAFigures, Verdict, inspect_mask, photo_verdict
from drywallqa.serving import predict_images

PROMPTS = ["segment crack", "segment taping area", "segment mould"]


class DarkTiles(BatchedPredictor):
    """Mask logits rising as pixels darken, confidence from each tile's brightness: deterministic and
    model-free, through the batched path (tiles, per-class thresholds, the tiling record)."""

    name, image_size, batch_size, tile = "dark-tiles", 64, 4, "auto"

    def forward_batch(self, images, prompts):
        grey = images.astype(np.float32).mean(axis=3)
        return (100 - grey) / 8, (grey.mean(axis=(1, 2)) - 150) / 40


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    for index in range(3):
        dataset = "cracks" if index % 2 == 0 else "drywall-join"
        write_image(folder / f"wall-{index}.jpg", render_sample_image(dataset, index, size=128).image, quality=90)
    return folder


def _record_as_predict_wrote_it(image, photo, prompt, result, name, mm_per_px):
    """A record as ``predict`` built it before Prediction (``inspect_mask``, then the fields of the
    old ``serving.results.inspection_record``, then the tiles): the parity reference."""
    inspection = inspect_mask(result.mask, prompt, image=photo.pixels, confidence=result.confidence,
                              mm_per_px=mm_per_px, scale=photo.scale)
    record = json_ready({
        "image": str(image), **inspection.to_dict(), "mask": f"masks/{name}.png", "overlay": f"overlays/{name}.jpg",
        "image_width": photo.width, "image_height": photo.height, "image_orientation": photo.orientation,
        "model": "stub", "threshold": 0.5, "mm_per_px": mm_per_px,
    })
    record["tiling"] = result.extra["tiling"]
    return record


def test_predict_writes_the_records_it_wrote_before_prediction(photos, tmp_path):
    out = tmp_path / "out"
    run = predict_images([photos], PROMPTS, out, DarkTiles(), model_id="stub", mm_per_px=0.5)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert records == run.records and len(records) == 9
    for image in sorted(photos.iterdir()):
        photo = read_photo(image)
        results = DarkTiles().predict_batch([photo.pixels] * 3, PROMPTS, mm_per_px=0.5 * photo.scale)
        names = [f"{image.stem}__{slug}" for slug in ("segment-crack", "segment-taping-area", "segment-mould")]
        expected = [_record_as_predict_wrote_it(image, photo, p, r, n, 0.5) for p, r, n in zip(PROMPTS, results, names)]
        verdict = photo_verdict(r["verdict"] for r in expected)
        assert [json.dumps(r) for r in records if r["image"] == str(image)] == \
            [json.dumps({"image": str(image), "photo_verdict": verdict, **r}) for r in expected]  # keys in order too
        for name, record in zip(names, expected):  # written before the photo's other prompts: no photo verdict
            assert (out / "records" / f"{name}.json").read_text() == json.dumps(record, indent=1)
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [(r["image"], r["photo_verdict"], r["prompt"], r["verdict"], r["length_mm"]) for r in rows] == \
        [(r["image"], r["photo_verdict"], r["prompt"], r["verdict"], str(r["figures"].get("length_mm", "")))
         for r in records]


def test_a_run_read_back_writes_the_same_bytes(photos, tmp_path):
    """Resume, report, truth and Ray read a run's records back as predictions: nothing drifts."""
    out = tmp_path / "out"
    predict_images([photos], PROMPTS, out, DarkTiles(), model_id="stub", mm_per_px=0.3)
    predictions = Predictions.read(out)
    assert predictions.to_jsonl() == (out / "results.jsonl").read_text()
    assert predictions.to_csv() == (out / "results.csv").read_text()
    # COCO again, the masks read from the folder this time (predict measured them in memory).
    assert json.dumps(predictions.to_coco(photos)) == (out / "coco.json").read_text()
    summary = read_json(out / "summary.json")
    assert {k: summary[k] for k in predictions.summary()} == predictions.summary()
    for prediction in predictions:
        assert json.dumps(Prediction.from_dict(prediction.to_dict(), out).to_dict()) == json.dumps(prediction.to_dict())
        assert prediction.load_mask().shape == (128, 128) and prediction.folder == out


def test_read_back_figures_stay_as_written_until_replaced():
    # 0.125 px at 1 mm/px: the record says 0.12 px and 0.125 mm, which no figure rounded to 0.12 px gives again.
    record = {"image": "a.jpg", "prompt": "segment crack", "class": "crack", "figure_set": "crack",
              "figures": {"area_percent": 0.1, "area_px": 3, "components": 1, "confidence": 0.5, "length_px": 0.12,
                          "length_mm": 0.125, "width_source": "mask"},
              "verdict": "pass", "reasons": [], "severity": 0.1, "checked": ["longest_mm"], "mask": "masks/a.png",
              "overlay": None, "image_width": 10, "image_height": 10, "image_orientation": 1, "model": "m",
              "threshold": 0.5, "mm_per_px": 1.0, "truth": {"iou": 0.5}}
    prediction = Prediction.from_dict(record)
    assert json.dumps(prediction.to_dict()) == json.dumps(record) and prediction.extra == {"truth": {"iou": 0.5}}
    assert prediction.figure_values["length_mm"] == 0.125 and prediction.figures.length_px == 0.12
    other = replace(prediction, figures=replace(prediction.figures, length_px=2.0))
    assert other.figure_values["length_mm"] == 2.0


@pytest.mark.parametrize("change, message", [
    ({"verdict": "maybe"}, "record 2 is not a prediction record.*verdict must be one of"),
    ({"image_width": 0}, "record 2 is not a prediction record.*image_width must be a positive integer"),
    ({"figures": [1, 2]}, "record 2 is not a prediction record.*figures is list"),
])
def test_a_record_that_is_not_a_prediction_is_one_data_error(photos, tmp_path, change, message):
    predict_images([photos], PROMPTS[:1], tmp_path / "out", DarkTiles())
    good = Predictions.read(tmp_path / "out")[0].to_dict()
    with pytest.raises(DataError, match=message):
        Predictions.from_dicts([good, {**good, **change}], source="results.jsonl")


def test_drywallqa_predict_gives_a_photos_predictions_ready_to_show_and_save(photos, tmp_path):
    image = photos / "wall-0.jpg"
    predictions = drywallqa.predict(image, PROMPTS[:2], DarkTiles(), mm_per_px=0.5)
    crack, taping = predictions
    assert (crack.prompt, crack.class_name, taping.class_name) == ("segment crack", "crack", "taping_area")
    assert predictions.verdict == photo_verdict([crack.verdict.verdict, taping.verdict.verdict])
    assert {p.photo_verdict for p in predictions} == {predictions.verdict}
    assert crack.image == str(image) and crack.image_orientation == 1 and crack.tiling["tiles"] == 1
    assert {"decode_s", "model_s", "qa_s"} <= set(crack.timings) and crack.figure_values["longest_mm"] is not None
    # The mask is the predictor's, the figures and verdict inspect_mask's.
    photo = read_photo(image)
    result = DarkTiles().predict_batch([photo.pixels], ["segment crack"], mm_per_px=0.5)[0]
    assert np.array_equal(crack.mask, result.mask)
    assert crack.inspection == inspect_mask(result.mask, "segment crack", image=photo.pixels,
                                            confidence=result.confidence, mm_per_px=0.5)
    overlay = crack.plot()
    assert overlay.shape == (128, 128, 3) and overlay.dtype == np.uint8 and (overlay != photo.pixels).any()
    assert isinstance(crack.plot(pil=True), Image.Image) and predictions.plot().shape == (128, 128, 3)
    # Saved as predict lays a folder out, and read back the same.
    saved = predictions.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved" / "masks").iterdir()) == [
        "wall-0__segment-crack.png", "wall-0__segment-taping-area.png"]
    assert Predictions.read(tmp_path / "saved").to_dicts() == saved.to_dicts()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "saved" / "overlays" / "wall-0__segment-crack.jpg")).shape,
                          overlay.shape)


def test_drywallqa_predict_takes_an_array_and_one_prompt():
    pixels = render_sample_image("cracks", 0, size=96).image
    (prediction,) = drywallqa.predict(pixels, "segment crack", DarkTiles())
    assert prediction.image == "image" and prediction.image_orientation is None
    assert (prediction.image_width, prediction.image_height) == (96, 96) and prediction.name == "image__segment-crack"
    coco = prediction.to_coco()
    assert [image["file_name"] for image in coco["images"]] == ["image"]
    assert sum(a["area"] for a in coco["annotations"]) <= prediction.figures.area_px


def test_one_plot_is_one_photos():
    a, b = (Prediction.measure(np.eye(32, dtype=bool), "segment crack", image=name, pixels=np.zeros((32, 32, 3), np.uint8))
            for name in ("a.jpg", "b.jpg"))
    with pytest.raises(ValueError, match="plot draws one photo's predictions, these are of 2"):
        Predictions([a, b]).plot()
    with pytest.raises(DataError, match="neither in memory nor in a folder"):
        replace(a, mask=None).load_mask()
    with pytest.raises(ValueError, match="mask must be"):
        Prediction("a.jpg", "p", None, QAFigures("area", 0.0, 0, 0), Verdict("unchecked"), 4, 4, mask=np.zeros((4, 4)))
