"""Tests of the built-in synthetic sample data (drywallqa.data.synthetic)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from drywallqa.data import AnnotatedDataset, shared_groups, source_group
from drywallqa.data.formats.coco import ANNOTATION_FILE, load_coco
from drywallqa.data.masks import mask_to_box
from drywallqa.data.synthetic import (
    CRACKS_DATASET,
    JOINTS_DATASET,
    MANIFEST_FILE,
    TRUTH_ANNOTATION_FILE,
    generate_sample_data,
    read_manifest,
    render_sample_image,
)
from drywallqa.errors import ConfigError, DrywallQAError

SEED, IMAGES, SIZE = 3, 30, 128
ROBOFLOW_NAME = re.compile(r"^[\w-]+_jpg\.rf\.[0-9a-f]{32}\.jpg$")


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    return generate_sample_data(tmp_path_factory.mktemp("sample") / "out", images=IMAGES, seed=SEED, size=SIZE)


@pytest.fixture(scope="module")
def cracks(sample_data) -> AnnotatedDataset:
    return AnnotatedDataset.load(sample_data.cracks, strict=True)


@pytest.fixture(scope="module")
def joints(sample_data) -> AnnotatedDataset:
    return AnnotatedDataset.load(sample_data.drywall_join, strict=True)


def _coco(dataset_root: Path, split: str, name: str = ANNOTATION_FILE) -> dict:
    return json.loads((dataset_root / split / name).read_text())


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def _true_mask(dataset: str, file_name: str, extra: dict) -> np.ndarray:
    """Re-render the source of an annotated image and apply its recorded transform to the masks."""
    index = int(source_group(file_name).rsplit("-", 1)[1])
    mask = render_sample_image(dataset, (SEED, index), size=SIZE).mask
    kind = extra["transform"]
    if kind == "hflip":
        return mask[:, ::-1]
    if kind == "vflip":
        return mask[::-1]
    if kind.startswith("rot"):
        return np.rot90(mask, int(kind[3:]) // 90)
    if kind == "crop":
        x0, y0, side = extra["crop"]
        window = mask[y0:y0 + side, x0:x0 + side].astype(np.float32)
        return cv2.resize(window, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) >= 0.5
    assert kind == "identity"
    return mask


# -- layout ---------------------------------------------------------------------------------------
def test_layout_matches_the_roboflow_exports(sample_data):
    root = sample_data.root
    assert sample_data.dataset_roots == (root / CRACKS_DATASET, root / JOINTS_DATASET)
    assert sorted(p.name for p in sample_data.cracks.iterdir()) == ["test", "train", "valid"]
    assert sorted(p.name for p in sample_data.drywall_join.iterdir()) == ["train", "valid"]
    for split in ("train", "valid"):
        assert (sample_data.drywall_join / split / TRUTH_ANNOTATION_FILE).is_file()
    images = [p for p in root.rglob("*.jpg")]
    assert len(images) == IMAGES == sample_data.total_images
    assert all(ROBOFLOW_NAME.match(p.name) for p in images)
    assert (root / "README.md").is_file() and (root / MANIFEST_FILE).is_file()
    manifest = read_manifest(root)
    assert manifest["complete"] and manifest["image_counts"] == sample_data.image_counts
    assert sorted(manifest["files"]) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                                                if p.is_file() and p.name != MANIFEST_FILE)


def test_categories_are_roboflow_like_and_resolve_to_prompt_classes(sample_data, cracks, joints):
    crack_categories = _coco(sample_data.cracks, "train")["categories"]
    assert crack_categories[0] == {"id": 0, "name": "cracks", "supercategory": "none"}
    assert crack_categories[1]["supercategory"] == "cracks"
    assert _coco(sample_data.drywall_join, "train")["categories"][0]["supercategory"] == "none"
    assert cracks.class_names == ("crack",)
    assert joints.class_names == ("taping_area",)
    assert len(cracks.issues) == len(joints.issues) == 0


def test_counts_and_splits(sample_data, cracks, joints):
    assert cracks.splits.keys() == {"train", "valid", "test"}
    assert joints.splits.keys() == {"train", "valid"}
    assert dict(sorted(cracks.splits.items())) == dict(sorted(sample_data.image_counts[CRACKS_DATASET].items()))
    assert len(cracks) == len(joints) == IMAGES // 2
    assert all(s.width == s.height == SIZE for s in [*cracks, *joints])


def test_cracks_are_masked_and_joints_box_only(sample_data, cracks, joints):
    assert all(s.has_true_mask for s in cracks)
    assert all(s.is_box_only for s in joints if s.annotations)
    for split in ("train", "valid"):
        assert all(a["segmentation"] == [] for a in _coco(sample_data.drywall_join, split)["annotations"])


def test_each_dataset_has_background_images(cracks, joints):
    assert any(not s.annotations for s in cracks)
    assert any(not s.annotations for s in joints)
    assert sum(bool(s.annotations) for s in cracks) > len(cracks) // 2


def test_every_segmentation_kind_occurs_in_cracks(sample_data):
    kinds = set()
    for split in ("train", "valid", "test"):
        for ann in _coco(sample_data.cracks, split)["annotations"]:
            seg = ann["segmentation"]
            kinds.add("polygon" if isinstance(seg, list) else f"rle-{type(seg['counts']).__name__}")
    assert kinds == {"polygon", "rle-list", "rle-str"}


# -- truth file -------------------------------------------------------------------------------------
def test_truth_file_aligns_with_box_file(sample_data):
    for split in ("train", "valid"):
        boxes = _coco(sample_data.drywall_join, split)
        truth = _coco(sample_data.drywall_join, split, TRUTH_ANNOTATION_FILE)
        assert truth["images"] == boxes["images"] and truth["categories"] == boxes["categories"]
        key = lambda a: (a["id"], a["image_id"], a["category_id"], a["bbox"])  # noqa: E731
        assert [key(a) for a in truth["annotations"]] == [key(a) for a in boxes["annotations"]]
        assert all(isinstance(a["segmentation"], dict) for a in truth["annotations"])

    truth = load_coco(sample_data.drywall_join / "train", annotation_file=TRUTH_ANNOTATION_FILE, strict=True)
    assert truth.class_names == ("taping_area",) and all(s.has_true_mask for s in truth)
    for sample in truth:
        for ann in sample.annotations:
            # A joint box is the tight box of the true mask.
            assert tuple(mask_to_box(ann.to_mask(SIZE, SIZE))) == ann.box


# -- groups ---------------------------------------------------------------------------------------
def test_variants_share_a_source_group(cracks, joints):
    for dataset in (cracks, joints):
        sizes = {}
        for sample in dataset:
            sizes[sample.group] = sizes.get(sample.group, 0) + 1
        assert max(sizes.values()) >= 2
        assert len({s.image_path.name for s in dataset}) == len(dataset)


def test_joint_splits_share_groups_and_crack_splits_do_not(sample_data, cracks, joints):
    def by_split(dataset):
        return {split: {s.group for s in dataset.split(split)} for split in dataset.splits}

    assert shared_groups(by_split(cracks)) == {}
    shared = shared_groups(by_split(joints))
    assert shared and sorted(shared) == list(sample_data.shared_joint_groups)
    assert read_manifest(sample_data.root)["shared_groups"][JOINTS_DATASET] == sorted(shared)


# -- fidelity ---------------------------------------------------------------------------------------
def test_crack_annotations_reproduce_the_rendered_masks(sample_data, cracks):
    extras = {}
    for split in ("train", "valid", "test"):
        for image in _coco(sample_data.cracks, split)["images"]:
            extras[image["file_name"]] = image["extra"]
    checked = 0
    for sample in cracks:
        if not sample.annotations:  # background sources, and crops that missed every crack
            continue
        name = sample.image_path.name
        truth = _true_mask(CRACKS_DATASET, name, extras[name])
        assert _iou(sample.mask("crack"), truth) >= 0.9, name
        checked += 1
    assert checked >= 5


def test_joint_truth_masks_are_the_rendered_masks(sample_data):
    for split in ("train", "valid"):
        coco = _coco(sample_data.drywall_join, split)
        truth = load_coco(sample_data.drywall_join / split, annotation_file=TRUTH_ANNOTATION_FILE, strict=True)
        extras = {image["file_name"]: image["extra"] for image in coco["images"]}
        for sample in truth:
            if sample.annotations:
                name = sample.image_path.name
                assert _iou(sample.mask(), _true_mask(JOINTS_DATASET, name, extras[name])) >= 0.99


def test_images_show_what_the_masks_say(cracks):
    # Cracks are drawn dark: inside the mask is clearly darker than the wall around it.
    for sample in [s for s in cracks if s.annotations][:5]:
        gray = sample.load_image().mean(axis=2)
        mask = sample.mask()
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask
        assert gray[mask].mean() < gray[ring].mean() - 10


# -- determinism and the output folder ----------------------------------------------------------
def test_same_seed_writes_the_same_bytes(tmp_path):
    first = generate_sample_data(tmp_path / "a", images=8, seed=1, size=64)
    second = generate_sample_data(tmp_path / "b", images=8, seed=1, size=64)
    assert _tree(first.root) == _tree(second.root)
    other = generate_sample_data(tmp_path / "c", images=8, seed=2, size=64)
    assert _tree(other.root) != _tree(first.root)


def test_rerun_into_own_output_regenerates_and_removes_stale_files(tmp_path):
    out = tmp_path / "out"
    generate_sample_data(out, images=14, seed=0, size=64)
    generate_sample_data(out, images=8, seed=0, size=64)
    fresh = generate_sample_data(tmp_path / "fresh", images=8, seed=0, size=64)
    assert _tree(out) == _tree(fresh.root)


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DrywallQAError, match="not a previous sample-data output"):
        generate_sample_data(tmp_path, images=8, size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(DrywallQAError, match="not a folder"):
        generate_sample_data(tmp_path / "notes.txt", images=8, size=64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"images": 5}, "images must be"),
        ({"size": 16}, "size must be"),
        ({"crack_fraction": 0.0}, "crack_fraction"),
        ({"crack_fraction": 0.95}, "each needs"),
        ({"seed": -1}, "seed must be"),
    ],
)
def test_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_sample_data(tmp_path / "out", **{"images": 10, "size": 64, **kwargs})
    assert not (tmp_path / "out").exists()


# -- rendering -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, class_name", [(CRACKS_DATASET, "crack"), (JOINTS_DATASET, "taping_area")])
def test_render_sample_image(dataset, class_name):
    rendered = render_sample_image(dataset, 5, size=96)
    assert rendered.image.shape == (96, 96, 3) and rendered.image.dtype == np.uint8
    assert rendered.class_name == class_name and rendered.masks
    assert all(m.any() for m in rendered.masks) and 0 < rendered.mask.mean() < 0.5
    again = render_sample_image(dataset, 5, size=96)
    assert np.array_equal(rendered.image, again.image) and np.array_equal(rendered.mask, again.mask)
    assert not render_sample_image(dataset, 5, size=96, background=True).masks
    assert "coverage=" in repr(rendered)


def test_render_rejects_unknown_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'walls'"):
        render_sample_image("walls")


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    generate_sample_data(tmp_path / "out", images=8, size=64, progress=True)
    captured = capsys.readouterr()
    assert "sample data" in captured.err and captured.out == ""
