"""evaluate_pseudo_masks: metrics, truth sources, the report and the preview grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from drywallqa.data import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.pseudomask.evaluate import (
    MethodScore,
    PseudoMaskReport,
    collect_items,
    confusion,
    evaluate_pseudo_masks,
    iou_dice,
)


@pytest.mark.parametrize(
    "pred, truth, iou, dice",
    [
        ([1, 1, 0, 0], [1, 1, 0, 0], 1.0, 1.0),
        ([1, 1, 0, 0], [0, 0, 1, 1], 0.0, 0.0),
        ([1, 1, 1, 1], [1, 0, 0, 0], 0.25, 0.4),
        ([0, 0, 0, 0], [0, 0, 0, 0], 1.0, 1.0),  # both empty
        ([1, 0, 0, 0], [0, 0, 0, 0], 0.0, 0.0),
    ],
)
def test_iou_and_dice(pred, truth, iou, dice) -> None:
    got = iou_dice(*confusion(np.array([pred], bool), np.array([truth], bool)))  # (1, 4) images
    assert got == pytest.approx((iou, dice))


def test_polygon_dataset_box_floor_is_the_truth_fill(line_dataset) -> None:
    report = evaluate_pseudo_masks(line_dataset, "box", workers=1, progress=False)
    (row,) = report.scores
    assert row.method == "box" and row.class_name == "crack" and row.boxes == row.scored == 6 and row.images == 6
    assert row.fill == 1.0 and row.iou == pytest.approx(row.truth_fill)  # box IoU inside the box = truth fill
    assert 0 < row.iou < row.dice < 1 and row.image_iou is not None


def test_synthetic_joints_use_the_truth_file(sample_data) -> None:
    items = collect_items(AnnotatedDataset.load(sample_data.drywall_join, quiet=True), source=sample_data.drywall_join)
    assert items and all(t is not None for it in items for t in it.truths)
    report = evaluate_pseudo_masks(sample_data.drywall_join, "box,ridge", workers=2, progress=False)
    assert [s.method for s in report.scores] == ["box", "ridge"]
    box, ridge = report.score("box"), report.score("ridge")
    # Scored against the truth file, not the boxes: a filled box would score 1 against itself.
    assert box.scored == box.boxes == ridge.scored > 0 and 0 < box.iou < 1 and 0 < ridge.iou < 1
    assert report.best() == max((box, ridge), key=lambda s: s.iou).method


def test_box_only_dataset_without_truth_reports_fill_only(sample_data, tmp_path) -> None:
    box_file = sample_data.drywall_join / "train" / "_annotations.coco.json"
    single = tmp_path / "joints" / "train"
    single.mkdir(parents=True)
    data = json.loads(box_file.read_text())
    for image in data["images"]:  # linked beside the json: data may not name files outside its folder
        (single / image["file_name"]).symlink_to((box_file.parent / image["file_name"]).resolve())
    (single / "_annotations.coco.json").write_text(json.dumps(data))
    report = evaluate_pseudo_masks(tmp_path / "joints", "box,ridge", workers=1, progress=False,
                                   preview=tmp_path / "grid.png", preview_images=2)
    assert all(s.iou is None and s.scored == 0 and s.boxes > 0 for s in report.scores)
    assert report.score("ridge").fill < report.score("box").fill == 1.0
    assert report.best() is None and "–" in report.to_markdown()
    assert Image.open(tmp_path / "grid.png").size[0] == 3 * 256


def test_report_is_printable_and_serialisable(sample_data, tmp_path) -> None:
    report = evaluate_pseudo_masks(
        [sample_data.cracks, sample_data.drywall_join], ["box", "ridge"], workers=1, progress=False, limit=4,
        preview=tmp_path / "grid.png", preview_images=3,
    )
    assert {s.dataset for s in report.scores} == {"cracks", "drywall-join"}
    assert {(s.dataset, s.class_name) for s in report.scores} == {("cracks", "crack"), ("drywall-join", "taping_area")}
    text = str(report)
    assert text.startswith("| dataset | class | method") and text.count("\n") == 1 + len(report.scores)
    data = json.loads(json.dumps(report.to_dict()))
    assert len(data["scores"]) == 4 and data["settings"]["limit"] == 4 and data["preview"].endswith("grid.png")
    assert "best=" in repr(report) and "IoU" in repr(report.scores[0])
    image = np.asarray(Image.open(tmp_path / "grid.png"))
    assert image.shape[1] == 3 * 256 and image.shape[0] == 28 + 3 * 256


def test_method_score_validates() -> None:
    with pytest.raises(ValueError, match="iou must be in"):
        MethodScore("d", "c", "m", 1, 1, 1, 1.5, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0.1)
    assert PseudoMaskReport().to_markdown().count("\n") == 1


def test_dataset_without_annotations_is_an_error(tmp_path) -> None:
    split = tmp_path / "empty" / "train"
    split.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(split / "a.jpg")
    (split / "_annotations.coco.json").write_text(json.dumps({
        "images": [{"id": 0, "file_name": "a.jpg", "width": 8, "height": 8}], "annotations": [],
        "categories": [{"id": 1, "name": "crack", "supercategory": "none"}],
    }))
    with pytest.raises(ConfigError, match="no annotated images"):
        evaluate_pseudo_masks(tmp_path / "empty", "box", workers=1, progress=False)
