"""materialize: images, mask PNGs and a manifest; atomic, resumable, refuses a different build."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from drywallqa.errors import ConfigError
from drywallqa.trainsets import TrainSetConfig, build_trainset, materialize
from drywallqa.trainsets.items import item_seeds, render_record
from drywallqa.trainsets.materialize import MANIFEST_COLUMNS


@pytest.fixture(scope="module")
def trainset(sample_data):
    return build_trainset(TrainSetConfig(datasets=[str(sample_data.root)], image_size=32, negative_rate=0.2))


def read_manifest(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_writes_manifest_images_and_masks(trainset, tmp_path):
    result = materialize(trainset, tmp_path / "out")
    rows = read_manifest(result.manifest)
    assert result.rows == len(rows) == len(trainset)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert {r["split"] for r in rows} == set(trainset.splits)
    for row, record in zip(rows, trainset.records):
        image = cv2.imread(str(tmp_path / "out" / row["image"]))
        mask = cv2.imread(str(tmp_path / "out" / row["mask"]), cv2.IMREAD_UNCHANGED)
        assert image is not None and mask is not None and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert row["prompts"].split("|") == list(record.prompts) and row["class"] == record.class_name
        assert (row["group"], row["dataset"], row["split"]) == (record.group, record.dataset, record.split)
        if record.is_negative or record.kind == "background":
            assert not mask.any()
        if record.is_copy:
            original = next(r for r in rows if r["image"] == row["augmented_from"])
            assert original["split"] == row["split"] == "train" and original["group"] == row["group"]
            assert row["image"].endswith(f".aug{record.copy_index}.jpg")
        else:
            assert row["augmented_from"] == ""
    for name in ("trainset.yaml", "augmentation.json", "build.json"):
        assert (tmp_path / "out" / name).is_file()
    assert TrainSetConfig.from_yaml(tmp_path / "out" / "trainset.yaml") == trainset.config


def test_rendered_copies_match_the_deterministic_epoch_0_item(trainset, tmp_path):
    materialize(trainset, tmp_path / "out")
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    copy = next(r for r in trainset.records if r.is_copy)
    _, expected = render_record(trainset, copy, trainset.augmentation(), item_seeds(trainset.config.seed, 0, copy.index)[0])
    written = cv2.imread(str(tmp_path / "out" / rows[copy.index]["mask"]), cv2.IMREAD_UNCHANGED) > 0
    np.testing.assert_array_equal(written, expected)


def test_resumes_by_skipping_files_already_written(trainset, tmp_path):
    out = tmp_path / "out"
    first = materialize(trainset, out)
    assert first.written > 0
    rows = read_manifest(first.manifest)
    (out / rows[0]["mask"]).unlink()
    (out / "manifest.csv").unlink()
    second = materialize(trainset, out)
    assert second.written == 1 and second.skipped == first.written + first.skipped - 1
    assert read_manifest(second.manifest) == rows
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave no temporary files


def test_refuses_a_folder_of_another_build(trainset, sample_data, tmp_path):
    materialize(trainset, tmp_path / "out")
    other = build_trainset(trainset.config.with_overrides({"seed": 5}))
    with pytest.raises(ConfigError, match="another config"):
        materialize(other, tmp_path / "out")


# -- names that data chooses ----------------------------------------------------------------------
def small_coco(root, splits, category="crack"):
    """A COCO dataset: ``{split: [(file_name, seed)]}``, one polygon per image, category ``category``."""
    from testdata import write_coco, write_jpeg

    for split, files in splits.items():
        images, annotations = [], []
        for index, (file_name, seed) in enumerate(files):
            write_jpeg(root / split / file_name, 32, 32, seed=seed)
            images.append({"id": index, "file_name": file_name, "width": 32, "height": 32})
            annotations.append({"id": index, "image_id": index, "category_id": 1, "bbox": [4, 4, 20, 6],
                                "segmentation": [[4, 4, 24, 4, 24, 10, 4, 10]]})
        write_coco(root / split, images, annotations, [{"id": 1, "name": category, "supercategory": "none"}])
    return root


def test_two_photos_of_one_name_in_two_splits_stay_two_files(tmp_path):
    # Before: both went to images/train/ds/a.jpg, the second "already there", and its rows showed the first photo.
    data = small_coco(tmp_path / "ds", {"train": [("a.jpg", 1), ("b.jpg", 2)], "valid": [("a.jpg", 3), ("c.jpg", 4)]})
    trainset = build_trainset(TrainSetConfig(datasets=[str(data)], image_size=32, balance_ratio=None, negative_rate=0.0,
                                             fractions={"train": 1.0}))
    sources = {str(r.image) for r in trainset.records}
    assert len(sources) == 4 and {r.split for r in trainset.records} == {"train"}
    out = tmp_path / "out"
    result = materialize(trainset, out)
    rows = read_manifest(result.manifest)
    assert len({row["image"] for row in rows}) == len({row["mask"] for row in rows}) == 4
    for row in rows:
        assert (out / row["image"]).read_bytes() == Path(row["source_image"]).read_bytes()


# Enough "../" to reach the root from any output folder, then a folder of /tmp (the "../../../../tmp/x/pwned").
ESCAPE = "../" * 40 + "tmp/drywallqapwned{token}/pwned"


@pytest.mark.parametrize("category", [ESCAPE, "..\\..\\evil", "C:/evil", "a\x00b", "x" * 400, ".", "NUL"],
                         ids=["dot-dot", "backslash", "drive letter", "NUL", "over-long", "dot", "windows device"])
def test_a_class_name_never_leads_a_mask_out_of_the_folder(tmp_path, category):
    import uuid

    token = uuid.uuid4().hex
    category = category.format(token=token)
    escaped = Path(f"/tmp/drywallqapwned{token}")
    data = small_coco(tmp_path / "data" / "ds", {"train": [("a.jpg", 1)], "valid": [("b.jpg", 2)]}, category)
    trainset = build_trainset(TrainSetConfig(datasets=[str(data)], image_size=32, balance_ratio=None, negative_rate=0.0))
    out = tmp_path / "data" / "out"
    rows = read_manifest(materialize(trainset, out).manifest)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents and data not in p.parents)
    assert written == [] and not escaped.exists()  # nothing outside the output folder (nor in the dataset)
    for row in rows:
        mask = (out / row["mask"])
        assert mask.is_file() and out.resolve() in mask.resolve().parents
        assert row["mask"].split("/")[1] not in (".", "..") and len(row["mask"].split("/")[1].encode()) <= 255
