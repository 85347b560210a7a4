"""Roboflow COCO import: every segmentation kind, layouts, and every bad-input case."""

import json

import numpy as np
import pytest
from testdata import write_coco, write_jpeg

from drywallqa.data import AnnotatedDataset
from drywallqa.data.formats.coco import PSEUDO_MANIFEST, PSEUDO_TOOL, load_coco, samples_to_coco
from drywallqa.data.formats.coco import write_coco as write_coco_json
from drywallqa.data.masks import mask_to_rle
from drywallqa.errors import DataError

NAME = "src_jpg.rf.0123456789abcdef0123456789abcdef.jpg"


def _image(i=0, name=NAME, w=32, h=24):
    return {"id": i, "file_name": name, "width": w, "height": h}


def _dataset(tmp_path, annotations, images=None, split="train", make_images=True):
    split_dir = tmp_path / "ds" / split
    images = images or [_image()]
    if make_images:
        for img in images:
            write_jpeg(split_dir / img["file_name"], img["width"], img["height"])
    write_coco(split_dir, images, annotations)
    return tmp_path / "ds"


def test_polygon_rle_and_box_only(tmp_path):
    rle_mask = np.zeros((24, 32), bool)
    rle_mask[5:10, 5:20] = True
    anns = [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]},
        {"id": 2, "image_id": 0, "category_id": 1, "bbox": [5, 5, 15, 5], "segmentation": mask_to_rle(rle_mask)},
        {"id": 3, "image_id": 0, "category_id": 1, "bbox": [20, 10, 5, 5], "segmentation": []},
    ]
    ds = AnnotatedDataset.load(_dataset(tmp_path, anns))
    assert ds.format == "coco" and ds.name == "ds" and ds.class_names == ("crack",)
    (sample,) = ds.samples
    assert sample.split == "train" and sample.group == "src" and (sample.width, sample.height) == (32, 24)
    kinds = [(a.has_mask, a.rle is not None, len(a.polygons)) for a in sample.annotations]
    assert kinds == [(True, False, 1), (True, True, 0), (False, False, 0)]
    assert sample.is_box_only and not sample.has_true_mask
    mask = sample.mask()
    assert mask[2:7, 2:7].all()  # inclusive polygon: 5x5 pixels
    assert mask[5:10, 5:20].all()
    assert mask[10:15, 20:25].all()  # box-only fills its box
    assert sample.boxes().tolist()[2] == [20, 10, 25, 15]
    assert sample.load_image().shape == (24, 32, 3)


def test_uncompressed_rle_as_in_roboflow_holes(tmp_path):
    counts = [24 * 3 + 4, 8, 24 * 32 - 24 * 3 - 4 - 8]  # column-major: rows 4..11 of column 3 are set
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [3, 4, 1, 8], "segmentation": {"size": [24, 32], "counts": counts}}]
    (sample,) = AnnotatedDataset.load(_dataset(tmp_path, anns)).samples
    mask = sample.mask()
    assert mask.sum() == 8 and mask[4:12, 3].all()


def test_layouts_root_split_folder_and_file(tmp_path):
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 3, 3], "segmentation": []}]
    root = _dataset(tmp_path, anns, split="valid")
    _dataset(tmp_path, anns, split="train")
    assert AnnotatedDataset.load(root).splits == {"train": 1, "valid": 1}
    one = AnnotatedDataset.load(root / "valid")
    assert one.splits == {"valid": 1} and one.name == "ds"
    assert AnnotatedDataset.load(root / "valid" / "_annotations.coco.json").splits == {"valid": 1}
    assert AnnotatedDataset.load(root).split("val").splits == {"valid": 1}
    with pytest.raises(DataError, match="no split"):
        AnnotatedDataset.load(root).split("test")


def test_roboflow_categories_resolve_to_prompt_classes(tmp_path):
    split_dir = tmp_path / "joints" / "train"
    write_jpeg(split_dir / NAME)
    cats = [{"id": 0, "name": "Drywall-Join", "supercategory": "none"}, {"id": 1, "name": "drywall-join", "supercategory": "Drywall-Join"}]
    write_coco(split_dir, [_image()], [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}], cats)
    ds = AnnotatedDataset.load(tmp_path / "joints")
    assert ds.class_names == ("taping_area",)
    assert ds[0].annotations[0].category == "drywall-join"


def test_background_images_and_writer_round_trip(tmp_path):
    images = [_image(0), _image(1, "bg_jpg.rf.0123456789abcdef0123456789abcdef.jpg")]
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [2, 2, 4, 4], "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]}]
    ds = AnnotatedDataset.load(_dataset(tmp_path, anns, images))
    assert [len(s.annotations) for s in ds] == [1, 0]
    out = tmp_path / "ds" / "train" / "copy.coco.json"
    write_coco_json(out, samples_to_coco(ds.samples, out.parent))
    again = AnnotatedDataset.load(out)
    assert [s.image_path.resolve() for s in again] == [s.image_path.resolve() for s in ds]
    assert (again[0].mask() == ds[0].mask()).all()


def test_writer_stores_replacement_masks_inside_boxes(tmp_path):
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0, 0, 10, 10], "segmentation": []}]
    ds = AnnotatedDataset.load(_dataset(tmp_path, anns))
    pseudo = np.zeros((24, 32), bool)
    pseudo[2:4, :] = True  # crosses the box edge: only the part inside is written
    coco = samples_to_coco(ds.samples, tmp_path, masks={0: {"crack": pseudo}})
    seg = coco["annotations"][0]["segmentation"]
    assert isinstance(seg["counts"], str) and coco["annotations"][0]["area"] == 20
    out = tmp_path / "pseudo" / "train" / "_annotations.coco.json"
    write_coco_json(out, samples_to_coco(ds.samples, out.parent, masks={0: {"crack": pseudo}}, pseudo_method="ridge"))
    # Its file names lead back to the dataset the pseudo-masks were made from, which its manifest names.
    (tmp_path / "pseudo" / PSEUDO_MANIFEST).write_text(json.dumps({"tool": PSEUDO_TOOL, "dataset": str(tmp_path / "ds")}))
    (ann,) = AnnotatedDataset.load(tmp_path / "pseudo")[0].annotations
    assert ann.is_pseudo and ann.has_mask and ann.to_mask(24, 32).sum() == 20


@pytest.mark.parametrize("manifest", [None, {"tool": PSEUDO_TOOL, "dataset": "/"}, {"tool": "other", "dataset": "DS"},
                                      {"tool": PSEUDO_TOOL, "dataset": "OTHER"}],
                         ids=["no manifest", "manifest naming /", "another tool's manifest", "another dataset"])
def test_file_names_leading_out_are_refused_without_the_manifest_of_their_dataset(tmp_path, manifest):
    anns = [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [0, 0, 10, 10], "segmentation": []}]
    ds = AnnotatedDataset.load(_dataset(tmp_path, anns))
    _dataset(tmp_path / "other", anns)
    out = tmp_path / "pseudo" / "train" / "_annotations.coco.json"
    write_coco_json(out, samples_to_coco(ds.samples, out.parent))
    if manifest:
        dataset = {"DS": str(tmp_path / "ds"), "OTHER": str(tmp_path / "other" / "ds")}.get(manifest["dataset"], manifest["dataset"])
        (tmp_path / "pseudo" / PSEUDO_MANIFEST).write_text(json.dumps({**manifest, "dataset": dataset}))
    with pytest.raises(DataError, match=r"none of its 1 image\(s\) could be used.*\(1 unsafe file name\)"):
        load_coco(tmp_path / "pseudo")


# -- bad input: each case is skipped with one counted reason, or fails in strict mode ------------
BAD_ANNOTATIONS = [
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [0, 0, 0, 5], "segmentation": []}, "zero-area box"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [100, 100, 5, 5], "segmentation": []}, "box outside the image"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 5, 5]]}, "polygon with fewer than 3 points"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 5, 5, 3]]}, "invalid polygon"),
    ({"id": 9, "image_id": 0, "category_id": 7, "bbox": [1, 1, 5, 5], "segmentation": []}, "unknown category id"),
    ({"id": 9, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}, "unknown image id"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": "oops", "segmentation": []}, "invalid box"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": {"size": [5, 5], "counts": "0"}}, "invalid RLE"),
    ({"id": 9, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": 3}, "invalid segmentation"),
]


@pytest.mark.parametrize("bad, reason", BAD_ANNOTATIONS, ids=[r for _, r in BAD_ANNOTATIONS])
def test_bad_annotation_is_skipped_and_counted_with_its_image(tmp_path, capsys, bad, reason):
    good = {"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}
    other = {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}
    root = _dataset(tmp_path, [good, bad, other], [_image(0), _image(1, "other.jpg")])
    ds = load_coco(root)
    err = capsys.readouterr().err.strip().splitlines()
    assert "annotation id=9" in err[0] and "_annotations.coco.json" in err[0]
    if reason == "unknown image id":  # it belongs to no image: nothing else is lost
        assert [len(s.annotations) for s in ds] == [1, 1] and ds.issues.counts() == {reason: 1} and len(err) == 1
    else:
        # The image that lost an annotation is left out whole, never kept with one object fewer.
        assert [s.image_id for s in ds] == ["1"]
        assert ds.issues.counts() == {reason: 1, "image with a skipped annotation": 1} and len(err) == 2
        assert "image id=0 (" in err[1]
    with pytest.raises(DataError, match=reason):
        load_coco(root, strict=True)


def test_an_image_whose_only_polygon_has_a_nan_vertex_is_skipped_not_made_background(tmp_path):
    # Before: the polygon was skipped and the photo became a crack-free background example.
    nan_polygon = {"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5],
                   "segmentation": [[1, 1, float("nan"), 1, 6, 6, 1, 6]]}
    root = _dataset(tmp_path, [nan_polygon], [_image(0), _image(1, "background.jpg")])
    ds = load_coco(root, quiet=True)
    assert [s.image_path.name for s in ds] == ["background.jpg"]
    assert ds.issues.counts() == {"invalid polygon": 1, "image with a skipped annotation": 1}


def test_rle_with_wrong_total_is_skipped(tmp_path):
    ann = {"id": 9, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": {"size": [24, 32], "counts": [5, 3]}}
    root = _dataset(tmp_path, [ann], [_image(0), _image(1, "other.jpg")])
    assert load_coco(root).issues.counts() == {"invalid RLE": 1, "image with a skipped annotation": 1}


def test_partially_outside_box_is_clipped(tmp_path):
    ann = {"id": 1, "image_id": 0, "category_id": 1, "bbox": [-5, 20, 10, 10], "segmentation": []}
    ds = load_coco(_dataset(tmp_path, [ann]))
    assert ds[0].annotations[0].box == (0.0, 20.0, 5.0, 24.0) and not ds.issues.counts()


@pytest.mark.parametrize("damage, reason", [("truncate", "unreadable image"), ("garbage", "unreadable image"), ("missing", "missing image")])
def test_bad_images_are_skipped(tmp_path, damage, reason):
    images = [_image(0), _image(1, "other_jpg.rf.0123456789abcdef0123456789abcdef.jpg")]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []} for i in (0, 1)]
    root = _dataset(tmp_path, anns, images)
    victim = root / "train" / images[1]["file_name"]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        victim.write_bytes(b"this is not an image")
    else:
        victim.unlink()
    ds = load_coco(root)
    assert len(ds) == 1 and ds.issues.counts() == {reason: 1}  # its annotation goes quietly with it
    with pytest.raises(DataError, match=victim.name):
        load_coco(root, strict=True)


def _edit_images(root, split, **first_image):
    """Change fields of the first image entry of a split's json (after its files were written)."""
    path = root / split / "_annotations.coco.json"
    data = json.loads(path.read_text())
    data["images"][0].update(first_image)
    path.write_text(json.dumps(data))


def test_image_size_mismatch_is_skipped(tmp_path):
    root = _dataset(tmp_path, [], [_image(0), _image(1, "other_jpg.rf.0123456789abcdef0123456789abcdef.jpg")])
    _edit_images(root, "train", width=64)
    assert load_coco(root).issues.counts() == {"image size mismatch": 1}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"images": []}'])
def test_non_coco_json_is_a_clear_error(tmp_path, content):
    split = tmp_path / "ds" / "train"
    split.mkdir(parents=True)
    (split / "_annotations.coco.json").write_text(content)
    with pytest.raises(DataError, match="_annotations.coco.json"):
        load_coco(tmp_path / "ds")


@pytest.mark.parametrize("damage", ["broken json", "every image unusable"])
def test_a_split_that_loses_all_its_images_is_an_error(tmp_path, damage):
    # Before: the split was dropped with one warning, and training without its train split "succeeded".
    root = _dataset(tmp_path, [], [_image(0)], split="valid")
    train = root / "train" / "_annotations.coco.json"
    if damage == "broken json":
        train.parent.mkdir()
        train.write_text("{broken")
        message = r"train/_annotations.coco.json: not valid JSON"
    else:
        _dataset(tmp_path, [], [_image(0)], split="train")
        _edit_images(root, "train", width="wide")
        message = r"train/_annotations.coco.json: none of its 1 image\(s\) could be used, so split 'train' would be empty \(1 invalid image size\)"
    with pytest.raises(DataError, match=message):
        load_coco(root)


ABSURD_VALUES = [
    # (case, change to the first image or annotation, reason)
    ("width is a word", ("image", {"width": "wide"}), "invalid image size"),
    ("width is not whole", ("image", {"height": 24.5}), "invalid image size"),
    ("vertex at 1e30", ("annotation", {"segmentation": [[1, 1, 1e30, 1, 6, 6, 1, 6]]}), "polygon far outside the image"),
    ("string bbox beside a polygon", ("annotation", {"bbox": "1,1,5,5"}), "invalid box"),
    ("bbox of width 1e30", ("annotation", {"bbox": [1, 1, 1e30, 5]}), "box far outside the image"),
    ("RLE size of words", ("annotation", {"segmentation": {"size": ["a", "b"], "counts": "x"}}), "invalid RLE"),
    ("duplicate image id", ("image", {"id": 1}), "duplicate image id"),
]


@pytest.mark.parametrize("change, reason", [c[1:] for c in ABSURD_VALUES], ids=[c[0] for c in ABSURD_VALUES])
def test_absurd_values_are_warned_about_and_skipped(tmp_path, capsys, change, reason):
    other = "other_jpg.rf.0123456789abcdef0123456789abcdef.jpg"
    images = [_image(0), _image(1, other), _image(2, "third_jpg.rf.0123456789abcdef0123456789abcdef.jpg")]
    anns = [{"id": 5, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]]},
            {"id": 6, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}]
    kind, values = change
    if kind == "annotation":
        anns[0].update(values)
    root = _dataset(tmp_path, anns, images)
    if kind == "image":
        _edit_images(root, "train", **values)
    ds = load_coco(root)
    assert reason in ds.issues.counts()
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("warning: skipped") and "_annotations.coco.json" in line for line in err)
    # Nothing of the bad entry is used: no annotation of image 0 survives, the third image keeps its own.
    assert all(a.source_id != "5" for s in ds for a in s.annotations)
    assert [a.source_id for s in ds if s.image_id == "2" for a in s.annotations] == ["6"]
    with pytest.raises(DataError, match=reason):
        load_coco(root, strict=True)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        AnnotatedDataset.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="unknown dataset layout"):
        AnnotatedDataset.load(tmp_path / "empty")


def test_a_flood_of_bad_entries_prints_twenty_warnings_and_a_count(tmp_path, capsys):
    # Before: a 200 MB {"images": [0, 0, ...]} printed a warning per entry (5 GB) and kept each one (10 GB).
    root = _dataset(tmp_path, [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5], "segmentation": []}],
                    [_image(7)])
    _edit = json.loads((root / "train" / "_annotations.coco.json").read_text())
    _edit["images"] = [0] * 5000 + _edit["images"] + [{"id": 8}] * 30
    (root / "train" / "_annotations.coco.json").write_text(json.dumps(_edit))
    ds = load_coco(root)
    assert len(ds) == 1 and len(ds[0].annotations) == 1
    assert ds.issues.counts() == {"images entry is not an object": 5000, "image entry without id or file_name": 30}
    assert len(ds.issues) == 5030 and len(ds.issues.issues) <= 1000 + 30
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 20 + 20 + 2
    assert "skipped 4980 more: images entry is not an object" in "\n".join(lines)
    assert "images[0]" in lines[0]
