"""Mask-folder importer: binary and index masks, splits, class files, bad masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drywallqa.data import AnnotatedDataset
from drywallqa.data.formats import detect_format
from drywallqa.data.formats.mask_folder import load_mask_folder, read_mask
from drywallqa.data.masks import rle_to_mask
from drywallqa.errors import ConfigError, DataError

WIDTH, HEIGHT = 40, 30


def write_image(path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 90, 90)).save(path)
    return path


def write_mask(path: Path, values: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint8), mode).save(path)
    return path


def blob(value: int = 255, box=(5, 10, 15, 20), size=(HEIGHT, WIDTH)) -> np.ndarray:
    """A mask with ``value`` in the xyxy ``box`` and 0 elsewhere."""
    mask = np.zeros(size, dtype=np.uint8)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = value
    return mask


def add_pair(folder: Path, stem: str, mask: np.ndarray | None) -> None:
    """``folder/images/<stem>.png`` and, unless None, ``folder/masks/<stem>.png``."""
    write_image(folder / "images" / f"{stem}.png")
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    if mask is not None:
        write_mask(folder / "masks" / f"{stem}.png", mask)


def two_class_mask() -> np.ndarray:
    mask = blob(1, (0, 0, 10, 5))
    mask[20:25, 30:38] = 2
    return mask


# -- binary masks ----------------------------------------------------------------------------------
def test_binary_masks_in_split_folders_take_the_folder_name_as_class(tmp_path):
    root = tmp_path / "cracks"
    add_pair(root / "train", "a_jpg.rf.0123456789abcdef0123456789abcdef", blob(255))
    add_pair(root / "train", "empty", np.zeros((HEIGHT, WIDTH)))
    add_pair(root / "valid", "b", blob(1, (0, 0, 40, 1)))

    ds = load_mask_folder(root, quiet=True)

    assert (ds.name, ds.format, ds.root, ds.class_names) == ("cracks", "mask-folder", root, ("crack",))
    assert ds.splits == {"train": 2, "valid": 1}
    assert len(ds.issues) == 0
    by_stem = {s.image_path.stem: s for s in ds}
    sample = by_stem["a_jpg.rf.0123456789abcdef0123456789abcdef"]
    assert (sample.group, sample.dataset, sample.split) == ("a", "cracks", "train")
    assert sample.image_id == f"train/images/{sample.image_path.name}"
    (ann,) = sample.annotations
    assert (ann.class_name, ann.category, ann.source_id, ann.has_mask) == ("crack", "cracks", "255", True)
    np.testing.assert_array_equal(sample.boxes(), [[5, 10, 15, 20]])
    np.testing.assert_array_equal(sample.mask(), blob(255) > 0)
    np.testing.assert_array_equal(rle_to_mask(ann.rle, HEIGHT, WIDTH), blob(255) > 0)
    assert by_stem["empty"].annotations == ()
    np.testing.assert_array_equal(by_stem["b"].boxes(), [[0, 0, 40, 1]])


def test_binary_zero_one_masks_with_class_names_argument(tmp_path):
    root = tmp_path / "ds"
    add_pair(root, "a", blob(1))

    ds = load_mask_folder(root, class_names=["drywall seam"], quiet=True)

    assert ds.splits == {"": 1}
    assert ds.class_names == ("taping_area",)
    assert [(a.class_name, a.category) for a in ds[0].annotations] == [("taping_area", "drywall seam")]


def test_classes_file_names_the_binary_class(tmp_path):
    root = tmp_path / "ds"
    add_pair(root / "train", "a", blob(255))
    (root / "classes.txt").write_text("background\njoint\n")

    assert load_mask_folder(root, quiet=True)[0].classes == ("taping_area",)


def test_split_folder_given_directly_belongs_to_the_dataset_above(tmp_path):
    root = tmp_path / "cracks"
    add_pair(root / "train", "a", blob(255))
    add_pair(root / "valid", "b", blob(255))

    ds = load_mask_folder(root / "train", quiet=True)

    assert (ds.name, ds.root, ds.splits, ds.class_names) == ("cracks", root, {"train": 1}, ("crack",))


def test_greyscale_rgb_and_palette_masks_are_read_as_values(tmp_path):
    rgb = write_mask(tmp_path / "rgb.png", np.stack([blob(255)] * 3, axis=-1))
    palette = tmp_path / "p.png"
    image = Image.fromarray(blob(2), "L").convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.save(palette)
    binary = tmp_path / "b.png"
    Image.fromarray(blob(1).astype(bool)).save(binary)

    np.testing.assert_array_equal(read_mask(rgb), blob(255))
    np.testing.assert_array_equal(read_mask(palette), blob(2))
    np.testing.assert_array_equal(read_mask(binary), blob(1))


# -- index masks -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        ("classes.txt", "crack\ntaping area\n"),
        ("classes.txt", "background\ncrack\ntaping area\n"),
        ("classes.yaml", "- crack\n- taping area\n"),
        ("classes.yaml", "{1: crack, 2: drywall-join}\n"),
        ("classes.yml", "names: {0: background, 1: cracks, 2: seam}\n"),
    ],
)
def test_index_masks_with_classes_file(tmp_path, file_name, text):
    root = tmp_path / "ds"
    add_pair(root / "train", "a", two_class_mask())
    add_pair(root / "train", "only2", blob(2))
    (root / file_name).write_text(text)

    ds = load_mask_folder(root, quiet=True)

    assert ds.class_names == ("crack", "taping_area")
    sample = {s.image_path.stem: s for s in ds}["a"]
    assert [(a.class_name, a.source_id) for a in sample.annotations] == [("crack", "1"), ("taping_area", "2")]
    np.testing.assert_array_equal(sample.boxes("crack"), [[0, 0, 10, 5]])
    np.testing.assert_array_equal(sample.boxes("taping_area"), [[30, 20, 38, 25]])
    np.testing.assert_array_equal(sample.mask("taping_area"), two_class_mask() == 2)
    np.testing.assert_array_equal(sample.mask(), two_class_mask() > 0)
    assert {s.image_path.stem: s for s in ds}["only2"].classes == ("taping_area",)


def test_index_masks_without_names_get_numbered_classes(tmp_path):
    root = tmp_path / "ds"
    add_pair(root, "a", two_class_mask())
    add_pair(root, "b", blob(1))

    ds = load_mask_folder(root, quiet=True)

    assert ds.class_names == ("class_1", "class_2")
    assert {s.image_path.stem: s.classes for s in ds} == {"a": ("class_1", "class_2"), "b": ("class_1",)}


def test_interpolated_binary_mask_is_skipped_without_turning_others_into_indices(tmp_path):
    root = tmp_path / "cracks"
    add_pair(root, "clean", blob(255))
    resized = blob(255)
    resized[9, 5:15] = 128
    resized[8, 5:15] = 3
    add_pair(root, "resized", resized)

    ds = load_mask_folder(root, quiet=True)

    assert [s.image_path.stem for s in ds] == ["clean"]
    assert ds.class_names == ("crack",)
    assert ds.issues.counts() == {"not a binary mask": 1}


# -- bad input -------------------------------------------------------------------------------------
def _missing_mask(root: Path) -> None:
    add_pair(root / "train", "bad", None)


def _unreadable_mask(root: Path) -> None:
    add_pair(root / "train", "bad", None)
    (root / "train" / "masks" / "bad.png").write_bytes(b"\x89PNG not really")


def _size_mismatch(root: Path) -> None:
    add_pair(root / "train", "bad", blob(255, size=(HEIGHT + 1, WIDTH)))


def _colour_mask(root: Path) -> None:
    add_pair(root / "train", "bad", None)
    colour = np.stack([blob(255), blob(0), blob(255)], axis=-1)
    write_mask(root / "train" / "masks" / "bad.png", colour)


def _value_out_of_range(root: Path) -> None:
    (root / "classes.txt").write_text("crack\ntaping area\n")
    add_pair(root / "train", "bad", blob(3))


def _not_binary(root: Path) -> None:
    mask = blob(255)
    mask[0, 0] = 1
    add_pair(root / "train", "bad", mask)


def _mask_without_image(root: Path) -> None:
    write_mask(root / "train" / "masks" / "bad.png", blob(255))


def _duplicate_image_name(root: Path) -> None:
    write_image(root / "train" / "images" / "good.jpg")


def _unreadable_image(root: Path) -> None:
    add_pair(root / "train", "bad", blob(255))
    (root / "train" / "images" / "bad.png").write_bytes(b"garbage")


def _split_without_masks(root: Path) -> None:
    write_image(root / "test" / "images" / "bad.png")


BAD_INPUT = [
    (_missing_mask, "missing mask", "bad.png"),
    (_unreadable_mask, "unreadable mask", "bad.png"),
    (_size_mismatch, "mask size mismatch", "bad.png"),
    (_colour_mask, "not a single-channel mask", "bad.png"),
    (_value_out_of_range, "class value out of range", "bad.png"),
    (_not_binary, "not a binary mask", "bad.png"),
    (_mask_without_image, "mask without image", "bad.png"),
    (_duplicate_image_name, "duplicate image name", "good.png"),  # good.jpg sorts first and is kept
    (_unreadable_image, "unreadable image", "bad.png"),
    (_split_without_masks, "missing masks folder", "masks"),
]


@pytest.mark.parametrize(("damage", "reason", "file"), BAD_INPUT, ids=[r for _, r, _ in BAD_INPUT])
def test_bad_input_is_skipped_and_counted(tmp_path, damage, reason, file):
    root = tmp_path / "ds"
    add_pair(root / "train", "good", two_class_mask() if reason == "class value out of range" else blob(255))
    damage(root)

    ds = load_mask_folder(root, quiet=True)

    assert ds.issues.counts() == {reason: 1}
    assert Path(ds.issues.issues[0].file).name == file
    assert [s.image_path.stem for s in ds] == ["good"]


@pytest.mark.parametrize(("damage", "reason", "file"), BAD_INPUT, ids=[r for _, r, _ in BAD_INPUT])
def test_bad_input_raises_in_strict_mode(tmp_path, damage, reason, file):
    root = tmp_path / "ds"
    add_pair(root / "train", "good", two_class_mask() if reason == "class value out of range" else blob(255))
    damage(root)

    with pytest.raises(DataError, match=f"{file}: {reason}"):
        load_mask_folder(root, strict=True)


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("classes.yaml", "[crack\n", "not valid YAML"),
        ("classes.yaml", "crack\n", "expected a non-empty list"),
        ("classes.txt", "\n\n", "expected a non-empty list"),
        ("classes.yaml", "{0: crack}\n", "value 0 is background, but it is named 'crack'"),
        ("classes.yaml", "{one: crack}\n", "'one' is not a pixel value"),
        ("classes.yaml", "[background]\n", "no foreground class"),
    ],
)
def test_invalid_classes_file_raises_naming_it(tmp_path, file_name, text, message):
    root = tmp_path / "ds"
    add_pair(root, "a", blob(255))
    (root / file_name).write_text(text)

    with pytest.raises(DataError, match=f"{file_name}: {message}"):
        load_mask_folder(root, quiet=True)


@pytest.mark.parametrize("class_names", [[], "crack", [""]])
def test_invalid_class_names_argument_raises(tmp_path, class_names):
    root = tmp_path / "ds"
    add_pair(root, "a", blob(255))

    with pytest.raises(ConfigError, match="class_names"):
        load_mask_folder(root, class_names=class_names)


def test_no_mask_folders_raises(tmp_path):
    write_image(tmp_path / "ds" / "images" / "a.png")
    with pytest.raises(DataError, match="no images/ \\+ masks/ folders"):
        load_mask_folder(tmp_path / "ds")
    with pytest.raises(DataError, match="no such folder"):
        load_mask_folder(tmp_path / "absent")


# -- format detection ------------------------------------------------------------------------------
@pytest.mark.parametrize("split_folder", ["", "train"])
def test_detect_format_and_load_find_mask_folders(tmp_path, split_folder):
    root = tmp_path / "cracks"
    add_pair(root / split_folder, "a", blob(255))

    assert detect_format(root) == "mask-folder"
    ds = AnnotatedDataset.load(root, quiet=True)
    assert (ds.format, len(ds), ds.class_names) == ("mask-folder", 1, ("crack",))
    assert AnnotatedDataset.from_mask_folder(root, class_names=["joint"], quiet=True).class_names == ("taping_area",)
