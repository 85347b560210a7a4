"""YOLO txt importer: both layouts, boxes and polygons, coordinate conversion, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from drywallqa.data import AnnotatedDataset
from drywallqa.data.formats import detect_format
from drywallqa.data.formats.yolo import label_path, load_yolo
from drywallqa.data.masks import boxes_to_mask, polygons_to_mask
from drywallqa.errors import DataError

WIDTH, HEIGHT = 100, 50


def write_image(path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (120, 120, 120)).save(path)
    return path


def write_yaml(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def roboflow_dataset(root: Path, labels: dict[str, dict[str, str | None]], names=("crack",), **extra) -> Path:
    """Roboflow layout: ``<split>/images/<stem>.png`` + ``<split>/labels/<stem>.txt`` (None: no file)."""
    splits = {"train": "../train/images", "val": "../valid/images", "test": "../test/images"}
    used = {key: value for key, value in splits.items() if value.split("/")[1] in labels}
    write_yaml(root / "data.yaml", {**used, "nc": len(names), "names": list(names), **extra})
    for split, files in labels.items():
        for stem, text in files.items():
            write_image(root / split / "images" / f"{stem}.png")
            if text is not None:
                (root / split / "labels").mkdir(parents=True, exist_ok=True)
                (root / split / "labels" / f"{stem}.txt").write_text(text)
    return root


def one_image_dataset(root: Path, text: str, **kwargs) -> Path:
    return roboflow_dataset(root, {"train": {"img": text}}, **kwargs)


# -- layouts -------------------------------------------------------------------------------------
def test_roboflow_layout_boxes_splits_and_provenance(tmp_path):
    stem = "IMG_1_jpg.rf.0123456789abcdef0123456789abcdef"
    root = roboflow_dataset(
        tmp_path / "cracks",
        {"train": {stem: "0 0.5 0.5 0.5 0.2\n", "bg": None}, "valid": {"v": "0 0.25 0.5 0.5 1.0\n"}},
    )

    ds = load_yolo(root, quiet=True)

    assert (ds.name, ds.format, ds.root, ds.class_names) == ("cracks", "yolo", root, ("crack",))
    assert ds.splits == {"train": 2, "valid": 1}
    assert len(ds.issues) == 0
    by_stem = {s.image_path.stem: s for s in ds}
    sample = by_stem[stem]
    assert (sample.width, sample.height, sample.split, sample.dataset) == (WIDTH, HEIGHT, "train", "cracks")
    assert sample.group == "IMG_1"
    assert sample.image_id == f"train/images/{stem}.png"
    np.testing.assert_array_equal(sample.boxes(), [[25, 20, 75, 30]])
    (ann,) = sample.annotations
    assert (ann.class_name, ann.category, ann.source_id, ann.has_mask) == ("crack", "crack", "1", False)
    assert by_stem["bg"].annotations == ()
    np.testing.assert_array_equal(by_stem["v"].boxes(), [[0, 0, 50, 50]])


def test_ultralytics_layout_with_path_key_and_dict_names(tmp_path):
    root = tmp_path / "joints"
    write_yaml(
        root / "data.yaml",
        {"path": ".", "train": "images/train", "val": "images/val", "test": None,
         "names": {0: "drywall-join", 1: "crack"}},
    )
    write_image(root / "images" / "train" / "a.png")
    write_image(root / "images" / "val" / "b.png")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.1 0.1\n")

    ds = load_yolo(root / "data.yaml", name="joints-v2", quiet=True)

    assert ds.name == "joints-v2"
    assert ds.class_names == ("crack", "taping_area")
    assert ds.splits == {"train": 1, "valid": 1}
    train = ds.split("train")[0]
    categories = [(a.class_name, a.category) for a in train.annotations]
    assert categories == [("taping_area", "drywall-join"), ("crack", "crack")]
    assert ds.split("valid")[0].annotations == ()


def test_names_dict_with_string_ids_and_data_yml(tmp_path):
    root = tmp_path / "ds"
    write_yaml(root / "data.yml", "train: train/images\nnames:\n  '0': seam\n  '1': crack\n")
    write_image(root / "train" / "images" / "a.png")
    (root / "train" / "labels").mkdir()
    (root / "train" / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")

    ds = load_yolo(root, quiet=True)

    assert ds[0].classes == ("crack",)
    assert ds.class_names == ("crack", "taping_area")


def test_val_and_valid_naming_one_folder_load_it_once(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    write_yaml(root / "data.yaml", {"train": "train/images", "val": "train/images", "valid": "../train/images",
                                    "names": ["crack"]})

    assert load_yolo(root, quiet=True).splits == {"train": 1}


def test_label_path_replaces_the_last_images_folder():
    assert label_path("images/x/train/images/a.jpg") == Path("images/x/train/labels/a.txt")
    assert label_path("ds/images/val/b.png") == Path("ds/labels/val/b.txt")
    assert label_path("flat/c.jpeg") == Path("flat/c.txt")


# -- coordinates ---------------------------------------------------------------------------------
def test_polygon_converts_exactly_despite_float_noise(tmp_path):
    # 0.29 * 100 is 28.999999999999996 in floating point; truncating rasterisation would put the
    # left edge at 28 if the loader did not remove that noise.
    assert 0.29 * WIDTH < 29
    root = one_image_dataset(tmp_path / "ds", "0 0.29 0.1 0.71 0.1 0.71 0.9 0.29 0.9\n")

    sample = load_yolo(root, quiet=True)[0]

    (ann,) = sample.annotations
    expected = np.array([[29, 5], [71, 5], [71, 45], [29, 45]], dtype=np.float32)
    np.testing.assert_array_equal(ann.polygons[0], expected)
    np.testing.assert_array_equal(sample.boxes(), [[29, 5, 71, 45]])
    mask = sample.mask()
    np.testing.assert_array_equal(mask, polygons_to_mask([expected], HEIGHT, WIDTH))
    assert mask[5:46, 29:72].all() and mask.sum() == 43 * 41


def test_box_mask_fills_the_pixel_box(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.3 0.5 0.2 0.4\n")

    sample = load_yolo(root, quiet=True)[0]

    np.testing.assert_array_equal(sample.boxes(), [[20, 15, 40, 35]])
    np.testing.assert_array_equal(sample.mask(), boxes_to_mask(np.array([[20, 15, 40, 35]]), HEIGHT, WIDTH))
    assert sample.mask().sum() == 20 * 20


def test_partly_outside_box_and_polygon_are_clipped(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.05 0.5 0.2 0.4\n0 -0.1 -0.2 0.2 -0.2 0.2 0.2\n")

    sample = load_yolo(root, quiet=True)[0]

    np.testing.assert_array_equal(sample.boxes(), [[0, 15, 15, 35], [0, 0, 20, 10]])
    # The polygon keeps its vertices: only rasterising clips it.
    np.testing.assert_array_equal(sample.annotations[1].polygons[0], [[-10, -10], [20, -10], [20, 10]])
    assert sample.mask().shape == (HEIGHT, WIDTH)


def test_uses_the_real_image_size(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.5 0.5\n")
    write_image(root / "train" / "images" / "img.png", 40, 80)

    sample = load_yolo(root, quiet=True)[0]

    assert (sample.width, sample.height) == (40, 80)
    np.testing.assert_array_equal(sample.boxes(), [[10, 20, 30, 60]])


# -- bad input -----------------------------------------------------------------------------------
BAD_LINES = [
    ("0 0.5 abc 0.1 0.1", "not a number"),
    ("0 0.5 nan 0.1 0.1", "not a number"),
    ("1.5 0.5 0.5 0.1 0.1", "invalid class id"),
    ("-1 0.5 0.5 0.1 0.1", "invalid class id"),
    ("7 0.5 0.5 0.1 0.1", "unknown class id"),
    ("0 0.5 0.5 0.1", "odd number of coordinates"),
    ("0 0.1 0.1 0.2 0.1 0.3", "odd number of coordinates"),
    ("0 0.5 0.5", "polygon with fewer than 3 points"),
    ("0", "polygon with fewer than 3 points"),
    ("0 0.5 0.5 0 0.1", "zero-area box"),
    ("0 0.5 0.5 -0.2 0.1", "zero-area box"),
    ("0 1.5 1.5 0.2 0.2", "box outside the image"),
    ("0 0.1 0.2 0.5 0.2 0.9 0.2", "zero-area polygon"),
    ("0 1.1 1.1 1.3 1.1 1.3 1.4", "polygon outside the image"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_is_skipped_and_counted_with_its_image(tmp_path, line, reason):
    root = roboflow_dataset(tmp_path / "ds", {"train": {"img": f"0 0.5 0.5 0.2 0.2\n{line}\n\n0 0.5 0.5 0.4 0.4\n",
                                                        "other": "0 0.5 0.5 0.2 0.2\n"}})

    ds = load_yolo(root, quiet=True)

    assert ds.issues.counts() == {reason: 1, "image with a skipped annotation": 1}
    line_issue, image_issue = ds.issues.issues
    assert (Path(line_issue.file).name, line_issue.entry) == ("img.txt", "line 2")
    # The image that lost a line is left out whole, never kept with one object fewer.
    assert Path(image_issue.file).name == "img.png"
    assert [s.image_path.stem for s in ds] == ["other"]


def test_an_image_whose_only_polygon_has_a_nan_vertex_is_skipped_not_made_background(tmp_path):
    root = roboflow_dataset(tmp_path / "ds", {"train": {"img": "0 0.1 0.1 nan 0.1 0.5 0.5\n", "other": None}})

    ds = load_yolo(root, quiet=True)

    assert [s.image_path.stem for s in ds] == ["other"]
    assert ds.issues.counts() == {"not a number": 1, "image with a skipped annotation": 1}


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_raises_in_strict_mode(tmp_path, line, reason):
    root = one_image_dataset(tmp_path / "ds", f"{line}\n")

    with pytest.raises(DataError, match=rf"img\.txt: line 1: {reason}"):
        load_yolo(root, strict=True)


def _unreadable_label(root: Path) -> None:
    (root / "train" / "labels" / "img.txt").write_bytes(b"0 0.5 \xff\xfe 0.2\n")


def _orphan_label(root: Path) -> None:
    (root / "train" / "labels" / "gone.txt").write_text("0 0.5 0.5 0.2 0.2\n")


def _unreadable_image(root: Path) -> None:
    (root / "train" / "images" / "broken.png").write_bytes(b"not an image")


BAD_FILES = [
    (_unreadable_label, "unreadable label file", "img.txt", 0),
    (_orphan_label, "label file without image", "gone.txt", 1),
    (_unreadable_image, "unreadable image", "broken.png", 1),
]


@pytest.mark.parametrize(("damage", "reason", "file", "loaded"), BAD_FILES, ids=[r for _, r, _, _ in BAD_FILES])
def test_bad_file_is_skipped_and_counted_or_raises_in_strict_mode(tmp_path, damage, reason, file, loaded):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    damage(root)

    ds = load_yolo(root, quiet=True)

    assert ds.issues.counts() == {reason: 1}
    assert Path(ds.issues.issues[0].file).name == file
    assert len(ds) == loaded
    with pytest.raises(DataError, match=reason):
        load_yolo(root, strict=True)


def test_skips_print_one_warning_each_unless_quiet(tmp_path, capsys):
    root = one_image_dataset(tmp_path / "ds", "9 0.5 0.5 0.2 0.2\nx\n")

    load_yolo(root)
    assert capsys.readouterr().err.count("warning: skipped") == 3  # two lines, then their image
    load_yolo(root, quiet=True)
    assert capsys.readouterr().err == ""


# -- data.yaml -----------------------------------------------------------------------------------
YAML_ERRORS = [
    ("names: [crack\ntrain: train/images\n", "not valid YAML"),
    ("- crack\n", "not a YOLO data.yaml"),
    ("train: train/images\n", "missing key 'names'"),
    ("train: train/images\nnames: crack\n", "key 'names' must be a list"),
    ("train: train/images\nnames: []\n", "key 'names' is empty"),
    ("train: train/images\nnames: {a: crack}\n", "key 'names': 'a' is not a class id"),
    ("train: train/images\nnc: 2\nnames: [crack]\n", "key 'nc' is 2"),
    ("names: [crack]\n", "no split key"),
    ("train: 3\nnames: [crack]\n", "key 'train' must be a folder path"),
    ("train: nowhere/images\nnames: [crack]\n", "key 'train': split folder not found"),
]


@pytest.mark.parametrize(("text", "message"), YAML_ERRORS, ids=[m for _, m in YAML_ERRORS])
def test_malformed_data_yaml_raises_naming_file_and_key(tmp_path, text, message):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    write_yaml(root / "data.yaml", text)

    with pytest.raises(DataError, match="data.yaml: " + message.replace("[", r"\[")):
        load_yolo(root, quiet=True)


def test_missing_folder_for_one_of_several_splits_is_skipped_unless_strict(tmp_path):
    # Roboflow can list a test split it did not export.
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    write_yaml(root / "data.yaml", {"train": "../train/images", "test": "../test/images", "names": ["crack"]})

    ds = load_yolo(root, quiet=True)

    assert ds.splits == {"train": 1}
    assert ds.issues.counts() == {"missing split folder": 1}
    assert ds.issues.issues[0].entry == "key 'test'"
    with pytest.raises(DataError, match="data.yaml: key 'test': split folder not found"):
        load_yolo(root, strict=True)


def test_no_data_yaml_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data.yaml or data.yml"):
        load_yolo(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file or folder"):
        load_yolo(tmp_path / "absent")


# -- format detection ----------------------------------------------------------------------------
def test_detect_format_and_load_find_yolo(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")

    assert detect_format(root) == "yolo"
    assert detect_format(root / "data.yaml") == "yolo"
    ds = AnnotatedDataset.load(root, quiet=True)
    assert (ds.format, len(ds)) == ("yolo", 1)
    assert AnnotatedDataset.from_yolo(root, quiet=True)[0].classes == ("crack",)


# -- paths the export names stay inside the dataset folder ------------------------------------------
def test_path_key_inside_the_dataset_is_used_and_outside_it_is_an_error(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    write_yaml(root / "data.yaml", {"path": str(root), "train": "train/images", "names": ["crack"]})
    assert len(load_yolo(root, quiet=True)) == 1
    elsewhere = one_image_dataset(tmp_path / "elsewhere", "0 0.5 0.5 0.2 0.2\n")
    write_yaml(root / "data.yaml", {"path": str(elsewhere), "train": "train/images", "names": ["crack"]})
    # Before: the photos of /elsewhere (or /etc) were read, scored and copied without a word.
    with pytest.raises(DataError, match=r"data.yaml: key 'path': .* is outside the dataset folder"):
        load_yolo(root, quiet=True)
    write_yaml(root / "data.yaml", {"path": "/content/datasets/gone", "train": "train/images", "names": ["crack"]})
    assert len(load_yolo(root, quiet=True)) == 1  # the exporting machine's folder: not here, ignored


def test_split_entry_leading_out_is_skipped_but_roboflow_dot_dot_is_read_from_the_root(tmp_path):
    root = one_image_dataset(tmp_path / "ds", "0 0.5 0.5 0.2 0.2\n")
    write_image(tmp_path / "train" / "images" / "outside.png")  # where "../train/images" leads as written
    write_yaml(root / "data.yaml", {"train": "../train/images", "val": str(tmp_path / "train" / "images"),
                                    "names": ["crack"]})
    ds = load_yolo(root, quiet=True)
    assert [s.image_path for s in ds] == [root / "train" / "images" / "img.png"]
    assert ds.issues.counts() == {"split folder outside the dataset": 1}
    with pytest.raises(DataError, match="key 'val': split folder outside the dataset"):
        load_yolo(root, strict=True)


def test_labels_are_looked_up_only_below_the_dataset_folder(tmp_path):
    # A dataset kept in a folder named "images", its split folders without one: Ultralytics' rule
    # (the last "images" becomes "labels") would read labels from a folder beside the dataset.
    root = tmp_path / "images" / "ds"
    write_yaml(root / "data.yaml", {"train": "train", "names": ["crack"]})
    write_image(root / "train" / "a.png")
    (tmp_path / "labels" / "ds" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "ds" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert label_path(root / "train" / "a.png") == tmp_path / "labels" / "ds" / "train" / "a.txt"
    assert label_path(root / "train" / "a.png", root) == root / "train" / "a.txt"
    (sample,) = load_yolo(root, quiet=True)
    assert sample.annotations == ()
