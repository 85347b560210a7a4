"""``drywallqa review``: predict -> export -> corrected export -> import -> a fine-tune that runs."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from drywallqa.cli import main
from drywallqa.data import AnnotatedDataset
from drywallqa.data.synthetic import render_sample_image
from drywallqa.files import write_image
from drywallqa.inference import Predictor, SegmentationResult
from drywallqa.serving import predict_images

pytest.importorskip("label_studio_converter", reason='the review extra is not installed: pip install "drywallqa[review]"')

PROMPTS = ["segment crack", "segment taping area"]


@pytest.fixture
def walls(tmp_path):
    """Eight synthetic photos and their true masks, by file name."""
    truth = {}
    for index in range(8):
        rendered = render_sample_image("cracks" if index % 2 == 0 else "drywall-join", index, size=96)
        write_image(tmp_path / "photos" / f"wall-{index}.jpg", rendered.image, quality=92)
        truth[f"wall-{index}.jpg"] = rendered
    return tmp_path / "photos", truth


class DarkPixels(Predictor):
    """A model-free predictor with masks worth reviewing: dark pixels; confidence falls as they spread."""

    name = "dark-pixels"

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        masks = [image.mean(axis=2) < 120 for image in images]
        return [SegmentationResult(p, m, float(np.clip(1 - 4 * m.mean(), 0, 1))) for m, p in zip(masks, prompts)]


@pytest.fixture
def review(walls, tmp_path):
    photos, _ = walls
    predict_images([photos], PROMPTS, tmp_path / "pred", DarkPixels(), model_id="dark-pixels")
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(tmp_path / "review"), "-n", "6",
                 "--photos", str(photos)]) == 0
    return tmp_path / "review"


def brush_region(mask: np.ndarray, label: str) -> dict:
    """What Label Studio exports for a brush region a reviewer painted."""
    from label_studio_converter import brush

    return {"id": "r1", "type": "brushlabels", "from_name": "label", "to_name": "image", "original_width": mask.shape[1],
            "original_height": mask.shape[0], "value": {"format": "rle", "rle": brush.mask2rle(mask.astype(np.uint8) * 255),
                                                        "brushlabels": [label]}}


def test_review_round_trip_from_predictions_to_a_fine_tune(review, walls, tmp_path, capsys):
    _, truth = walls
    # The least certain photos, ranked by the model's own confidence, with their masks as predictions.
    manifest = json.loads((review / "review.json").read_text())
    confidences = [entry["confidence"] for entry in manifest["ranking"]]
    assert len(confidences) == 6 and confidences == sorted(confidences)
    with open(tmp_path / "pred" / "results.csv") as f:
        lowest = sorted(min(float(r["confidence"]) for r in rows) for rows in _by_image(csv.DictReader(f)).values())
    assert confidences == pytest.approx(lowest[:6], abs=1e-4)
    tasks = json.loads((review / "label-studio" / "tasks.json").read_text())
    assert [t["data"]["drywallqa_image"] for t in tasks] == [e["name"] for e in manifest["ranking"]]
    assert all((review / "images" / t["data"]["drywallqa_image"]).is_file() for t in tasks)
    assert "<BrushLabels" in (review / "label-studio" / "label_config.xml").read_text()
    predicted = [r for t in tasks for r in t["predictions"][0]["result"]]
    assert predicted and {r["value"]["brushlabels"][0] for r in predicted} <= {"crack", "taping_area"}

    # Reviewers correct five tasks in Label Studio: the true mask (one is a wall with nothing to
    # segment: they delete the prediction), and leave the sixth for later.
    for number, task in enumerate(tasks[:5]):
        rendered = truth[task["data"]["drywallqa_image"]]
        result = [] if number == 0 else [brush_region(rendered.mask, rendered.class_name)]
        task["annotations"] = [{"id": number, "result": result, "was_cancelled": False}]
    export = tmp_path / "project-1-at-2026.json"
    export.write_text(json.dumps(tasks))
    corrected = tmp_path / "corrected"
    assert main(["review", "import", str(export), "--images", str(review / "images"), "--out", str(corrected)]) == 0
    printed = capsys.readouterr().out
    assert "5 reviewed photo(s) (1 with nothing to segment), 4 annotation(s)" in printed and "1 not reviewed" in printed

    dataset = AnnotatedDataset.load(corrected)
    assert len(dataset) == 5 and dataset.splits == {"train": 5}
    for sample in dataset:
        rendered = truth[sample.image_path.name]
        expected = rendered.mask if sample.annotations else np.zeros_like(rendered.mask)
        assert np.array_equal(sample.mask(), expected)

    # The command fine-tunes the shipped model on the corrections (two steps, 64 px).
    run = tmp_path / "tuned"
    assert main(["train", "--init-from", "default", "--data", str(corrected), "--out", str(run), "--epochs", "1",
                 "--image-size", "64", "--batch-size", "2", "--set", "trainer.limit_train_batches=2",
                 "--set", "trainer.num_workers=0", "--no-progress"]) == 0
    assert "fine-tuning promptunet from" in capsys.readouterr().out
    assert (run / "model" / "model.safetensors").is_file()


def _by_image(rows) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["image"], []).append(row)
    return grouped


def test_cvat_coco_export_round_trips_as_zip(review, walls, tmp_path):
    _, truth = walls
    coco = json.loads((review / "cvat" / "annotations" / "instances_default.json").read_text())
    assert coco["annotations"] and all(a["iscrowd"] == 1 for a in coco["annotations"])  # RLE masks, as CVAT reads them
    # A CVAT "COCO 1.0" export of the corrected task: annotations/instances_default.json and images/.
    first = coco["images"][0]
    rendered = truth[first["file_name"]]
    from drywallqa.data.masks import mask_to_box, mask_to_rle

    x1, y1, x2, y2 = (float(v) for v in mask_to_box(rendered.mask))
    box = [x1, y1, x2 - x1, y2 - y1]
    coco["annotations"] = [{"id": 1, "image_id": first["id"], "category_id": 1, "iscrowd": 1, "bbox": box,
                            "segmentation": mask_to_rle(rendered.mask), "area": int(rendered.mask.sum())}]
    archive = tmp_path / "task_1_annotations.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("annotations/instances_default.json", json.dumps(coco))
        for image in coco["images"]:
            z.write(review / "images" / image["file_name"], f"images/{image['file_name']}")
    assert main(["review", "import", str(archive), "--out", str(tmp_path / "from-cvat")]) == 0
    dataset = AnnotatedDataset.load(tmp_path / "from-cvat")
    assert len(dataset) == 6
    sample = next(s for s in dataset if s.image_path.name == first["file_name"])
    assert np.array_equal(sample.mask(), rendered.mask)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"tasks": []}', "neither a Label Studio JSON export"),
    ('[{"data": {"image": "x.jpg"}, "annotations": []}]', "no reviewed photo"),
])
def test_broken_export_is_one_line_exit_2(content, message, review, tmp_path, capsys):
    export = tmp_path / "export.json"
    export.write_text(content)
    assert main(["review", "import", str(export), "--images", str(review / "images"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_a_broken_region_is_skipped_with_a_warning_or_fails_in_strict_mode(review, tmp_path, capsys):
    tasks = json.loads((review / "label-studio" / "tasks.json").read_text())[:2]
    region = brush_region(np.ones((96, 96), bool), "crack")
    broken = {**region, "value": {**region["value"], "rle": [0, 0, 1]}}
    tasks[0]["annotations"] = [{"result": [broken]}]
    tasks[1]["annotations"] = [{"result": [region]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    args = ["review", "import", str(export), "--images", str(review / "images")]
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    captured = capsys.readouterr()
    # The photo that lost its region is left out whole, never imported as "nothing to segment".
    assert "invalid brush RLE" in captured.err and "photo with a skipped region" in captured.err
    assert "2 skipped" in captured.out and len(AnnotatedDataset.load(tmp_path / "c")) == 1
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "invalid brush RLE" in err and err.count("\n") == 1


def test_missing_review_extra_names_the_pip_command(review, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "label_studio_converter", None)
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(tmp_path / "r2")]) == 2
    assert 'pip install "drywallqa[review]"' in capsys.readouterr().err


# -- paths named by data stay inside their folders ---------------------------------------------------
HOSTILE_RECORDS = {
    "absolute photo": ({"image": "/etc/passwd"}, "record 9 image"),
    "photo climbing out": ({"image": "../../../../etc/passwd"}, "record 9 image"),
    "photo with a backslash": ({"image": "..\\..\\evil.jpg"}, "record 9 image"),
    "photo with a drive letter": ({"image": "C:/evil.jpg"}, "record 9 image"),
    "photo with a NUL": ({"image": "wall-0.jpg\x00"}, "record 9 image"),
    "over-long photo name": ({"image": "x" * 300 + ".jpg"}, "record 9 image"),
    "mask climbing out": ({"mask": "../../../../etc/x.png"}, "record 9 mask"),
    "absolute mask": ({"mask": "/etc/x.png"}, "record 9 mask"),
}


@pytest.mark.parametrize("change, entry", HOSTILE_RECORDS.values(), ids=HOSTILE_RECORDS)
def test_review_export_copies_no_file_a_record_names_outside_the_run(walls, tmp_path, capsys, change, entry):
    # Before: "image": "/etc/passwd" landed in REVIEW/images/passwd.
    photos, _ = walls
    predict_images([photos], PROMPTS[:1], tmp_path / "pred", DarkPixels(), model_id="dark-pixels")
    results = tmp_path / "pred" / "results.jsonl"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    hostile = {**records[0], **change, "figures": {**records[0]["figures"], "confidence": 0.0}}
    results.write_text("".join(json.dumps(r) + "\n" for r in [*records, hostile]))
    out = tmp_path / "review"
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(out), "-n", "20", "--photos", str(photos)]) == 0
    err = capsys.readouterr().err
    assert f"results.jsonl: {entry}" in err and err.count("warning:") == 1
    copied = sorted(p.name for p in (out / "images").iterdir())
    # Every other photo is copied, none from outside; a photo whose record names a mask outside is left out.
    assert copied == sorted({Path(r["image"]).name for r in records if r["image"] != hostile["image"]})
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(tmp_path / "strict"), "--photos", str(photos),
                 "--strict"]) == 2


def test_review_export_takes_photos_only_from_the_photos_folder(walls, tmp_path, capsys, monkeypatch):
    photos, _ = walls
    predict_images([photos], PROMPTS[:1], tmp_path / "pred", DarkPixels(), model_id="dark-pixels")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the default photos' folder: the photos are not in it
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error:") and "give --photos" in err.splitlines()[-1]
    monkeypatch.chdir(tmp_path)  # photos/ lies in it
    assert main(["review", "export", str(tmp_path / "pred"), "--out", str(tmp_path / "r")]) == 0


@pytest.mark.parametrize("label", ["../" * 40 + "tmp/drywallqapwned{token}/pwned", "..\\..\\evil", "C:/evil", "a\x00b",
                                   "x" * 300])
def test_a_reviewer_label_never_leads_a_training_file_out_of_its_folder(review, walls, tmp_path, label):
    # Before: a brush label holding ../ became a category, and `trainset build --materialize` wrote masks outside OUT.
    import uuid

    token = uuid.uuid4().hex
    label = label.format(token=token)
    _, truth = walls
    tasks = json.loads((review / "label-studio" / "tasks.json").read_text())[:4]
    for task in tasks:
        rendered = truth[task["data"]["drywallqa_image"]]
        task["annotations"] = [{"result": [brush_region(rendered.mask, label)]}]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    corrected = tmp_path / "work" / "corrected"
    assert main(["review", "import", str(export), "--images", str(review / "images"), "--out", str(corrected)]) == 0
    out = tmp_path / "work" / "set"
    assert main(["trainset", "build", "--data", str(corrected), "--materialize", str(out)]) == 0
    stray = [p for p in (tmp_path / "work").rglob("*") if p.is_file() and out not in p.parents and corrected not in p.parents]
    assert stray == [] and not Path(f"/tmp/drywallqapwned{token}").exists()
    assert all(out.resolve() in p.resolve().parents for p in out.rglob("*.png"))


@pytest.mark.parametrize("name, imported", [
    ("/data/upload/1/{name}", True),          # Label Studio's own upload path: found by its last part
    ("C:\\Users\\me\\photos\\{name}", True),  # a Windows path: the same
    ("../../../../etc/passwd", False),
    ("{name}\x00.png", False),
    ("x" * 300 + ".jpg", False),
    ("..", False),
])
def test_label_studio_photo_names_are_looked_up_in_the_photos_folder_only(review, tmp_path, capsys, name, imported):
    tasks = json.loads((review / "label-studio" / "tasks.json").read_text())[:2]
    for task in tasks:
        task["annotations"] = [{"result": []}]
    tasks[0]["data"] = {"image": name.format(name=tasks[0]["data"]["drywallqa_image"])}
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    assert main(["review", "import", str(export), "--images", str(review / "images"), "--out", str(tmp_path / "c")]) == 0
    assert len(AnnotatedDataset.load(tmp_path / "c")) == (2 if imported else 1)
    assert "Traceback" not in capsys.readouterr().err
