"""`drywallqa.files`: how images of every kind are read, refused or reduced, and writes that fail cleanly."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import yaml
from oriented_photos import FAKE_HEIC, heic_bytes, pattern, shown, with_orientation
from PIL import Image

from drywallqa import files
from drywallqa.data import AnnotatedDataset
from drywallqa.errors import DataError, DrywallQAError, ImageSizeError
from drywallqa.files import (
    atomic_write_text,
    check_photo_size,
    decode_image_bytes,
    ensure_writable,
    image_size,
    read_image,
    read_photo,
)
from drywallqa.image_codecs import HeifSupportMissing, is_heif, orient


def ramp(height: int = 48, width: int = 64) -> np.ndarray:
    """A left-to-right ramp from 0 to 1."""
    return np.tile(np.linspace(0, 1, width), (height, 1))


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def corrupt_scan(data: bytes) -> bytes:
    """The same JPEG with its header intact and its scan cut short, then closed with an end marker."""
    return data[: len(data) * 2 // 3] + b"\xff\xd9"


def noise(height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)


# -- bit depth: 16-bit and float images keep their contrast ----------------------------------------
@pytest.mark.parametrize("kind", ["16-bit PNG", "16-bit TIFF", "32-bit int TIFF", "float TIFF 0..1", "float TIFF 0..1000"])
def test_high_bit_depth_images_are_scaled_not_clipped(tmp_path, kind):
    values = {
        "16-bit PNG": (ramp() * 65535).astype(np.uint16), "16-bit TIFF": (ramp() * 65535).astype(np.uint16),
        "32-bit int TIFF": (ramp() * 65535).astype(np.int32), "float TIFF 0..1": ramp().astype(np.float32),
        "float TIFF 0..1000": (ramp() * 1000).astype(np.float32),
    }[kind]
    path = tmp_path / ("image.png" if "PNG" in kind else "image.tif")
    Image.fromarray(values).save(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    # PIL's own convert("RGB") clips these to white (16-bit) or black (float): the ramp must survive.
    assert image[:, 0].max() <= 1 and image[:, -1].min() >= 254
    assert np.all(np.diff(image[0, :, 0].astype(int)) >= 0) and 120 < image.mean() < 135
    assert np.array_equal(decode_image_bytes(path.read_bytes()), image)


# -- corrupt scans -----------------------------------------------------------------------------------
def test_corrupt_jpeg_scan_is_an_error_not_garbage(tmp_path):
    good = jpeg_bytes(noise())
    path = tmp_path / "scan.jpg"
    path.write_bytes(corrupt_scan(good))
    with Image.open(path) as img:
        img.load()  # PIL decodes it without a word
    for read in (read_image, read_photo, image_size):
        with pytest.raises(DataError, match=r"scan\.jpg: corrupt or truncated JPEG data"):
            read(path)
    with pytest.raises(DataError, match="upload.jpg: corrupt"):
        read_photo(path.read_bytes(), name="upload.jpg")
    assert image_size(path, verify=False) == (64, 48)  # the header alone is intact
    path.write_bytes(good)
    assert read_image(path).shape == (48, 64, 3)


# -- size limits ---------------------------------------------------------------------------------------
def test_photo_under_the_minimum_side_is_refused(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(ImageSizeError, match=r"tiny\.png: image is 8x8 px; drywallqa judges images of at least 32 px") as info:
        read_photo(path)
    assert not info.value.too_large
    assert read_image(path).shape == (8, 8, 3)  # datasets may hold small images; only judging refuses them


@pytest.fixture
def small_limits(monkeypatch):
    """PIL's bomb limit and drywallqa's decode limit scaled down, so 'huge' images are small files."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000)        # PIL warns over 2 000 px, refuses over 4 000
    monkeypatch.setattr(files, "MAX_DECODE_PIXELS", 3_000)
    monkeypatch.setattr(files, "PHOTO_MAX_SIDE", 40)


def test_huge_jpeg_is_decoded_reduced_and_huge_png_refused(tmp_path, small_limits, recwarn):
    photo = (np.stack([ramp(96, 128)] * 3, axis=2) * 255).astype(np.uint8)   # 12 288 px: a "bomb"
    jpeg = tmp_path / "huge.jpg"
    jpeg.write_bytes(jpeg_bytes(photo))
    reduced = read_photo(jpeg, max_side=40, min_side=8)
    assert (reduced.width, reduced.height) == (128, 96) and max(reduced.pixels.shape[:2]) <= 40
    assert reduced.scale == pytest.approx(128 / reduced.pixels.shape[1])
    with pytest.raises(ImageSizeError, match=r"huge\.jpg: image is 128x96 = 0 megapixels; drywallqa decodes at most"):
        read_image(jpeg)                                  # full size (a dataset image): over the limit
    with pytest.raises(ImageSizeError, match="huge.jpg"):
        image_size(jpeg)

    png = tmp_path / "huge.png"
    Image.fromarray(photo).save(png)
    for read in (read_image, read_photo):
        with pytest.raises(ImageSizeError, match=r"huge\.png: image has too many pixels") as info:
            read(png)
        assert info.value.too_large
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_large_photo_is_reduced_to_the_photo_side(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray((np.stack([ramp(90, 300)] * 3, axis=2) * 255).astype(np.uint8)).save(path)
    photo = read_photo(path, max_side=100, min_side=8)
    assert photo.pixels.shape == (30, 100, 3) and photo.scale == 3.0
    assert read_photo(path, max_side=None).pixels.shape == (90, 300, 3)


# -- EXIF orientation: photos to judge turned as a viewer shows them, dataset images as stored ----------
def test_the_pattern_tells_every_orientation_apart():
    turned = [orient(pattern(), o) for o in range(1, 9)]
    assert all(a.shape != b.shape or not np.array_equal(a, b) for i, a in enumerate(turned) for b in turned[i + 1 :])


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["JPEG file", "JPEG bytes", "PNG"])
def test_photos_are_turned_by_their_exif_orientation(tmp_path, orientation, kind):
    path = with_orientation(tmp_path / ("photo.png" if kind == "PNG" else "photo.jpg"), orientation)
    photo = read_photo(path.read_bytes() if kind == "JPEG bytes" else path)
    expected = shown(path)
    assert photo.orientation == orientation and np.array_equal(photo.pixels, expected)  # decoded by libjpeg-turbo alike
    assert (photo.width, photo.height) == (expected.shape[1], expected.shape[0]) and photo.scale == 1.0
    with Image.open(path) as img:
        stored = np.asarray(img.convert("RGB"))
    assert np.array_equal(read_image(path), stored)           # a dataset image: the file's pixel order
    assert np.array_equal(decode_image_bytes(path.read_bytes()), stored)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_reduced_photos_are_turned_and_keep_their_scale(tmp_path, orientation):
    import cv2

    big = cv2.resize(pattern(), (960, 640), interpolation=cv2.INTER_NEAREST)   # 10x the pattern
    path = with_orientation(tmp_path / "big.jpg", orientation, big)
    photo = read_photo(path, max_side=120)                     # DCT scaling by 8, then area averaging
    expected = shown(path)
    assert (photo.width, photo.height) == (expected.shape[1], expected.shape[0]) and photo.orientation == orientation
    h, w = photo.pixels.shape[:2]
    assert max(h, w) == 120 and photo.scale == pytest.approx(photo.height / h, rel=0.01)
    small = cv2.resize(expected, (w, h), interpolation=cv2.INTER_AREA)
    assert np.mean((photo.pixels[:, :, 0] < 128) == (small[:, :, 0] < 128)) > 0.97   # the blocks where a viewer sees them


def test_dataset_readers_keep_the_files_pixel_order(tmp_path):
    """COCO, YOLO and mask folders: annotation tools store coordinates in the file's pixel order."""
    coco = tmp_path / "coco" / "train"
    with_orientation(coco.mkdir(parents=True) or coco / "wall.jpg", 6)
    (coco / "_annotations.coco.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "wall.jpg", "width": 96, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 32, 16], "area": 512,
                         "segmentation": [], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "crack", "supercategory": "none"}]}))
    yolo = tmp_path / "yolo"
    (yolo / "train" / "images").mkdir(parents=True)
    (yolo / "train" / "labels").mkdir()
    with_orientation(yolo / "train" / "images" / "wall.jpg", 6)
    (yolo / "train" / "labels" / "wall.txt").write_text("0 0.1666667 0.125 0.3333333 0.25\n")
    (yolo / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "nc": 1, "names": ["crack"]}))
    folder = tmp_path / "masks"
    (folder / "images").mkdir(parents=True)
    with_orientation(folder / "images" / "wall.jpg", 6)
    (folder / "masks").mkdir()
    Image.fromarray((pattern()[:, :, 0] < 128).astype(np.uint8) * 255).save(folder / "masks" / "wall.png")
    stored = read_image(coco / "wall.jpg")
    assert stored.shape == (64, 96, 3) and shown(coco / "wall.jpg").shape == (96, 64, 3)
    for root in (coco.parent, yolo, folder):
        (sample,) = AnnotatedDataset.load(root, strict=True)
        assert (sample.width, sample.height) == (96, 64) and np.array_equal(sample.load_image(), stored)
        assert sample.mask()[:16, :32].all() and not sample.mask()[16:40].any()


# -- too small to judge: in the file, or once decoded reduced -----------------------------------------
def test_thin_strip_is_refused_after_reduced_decoding(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (100_000, 40), (200, 200, 200)).save(path)            # 4 megapixels, 40 px tall
    with pytest.raises(ImageSizeError, match=r"strip\.png: image is 100000x40 px, decoded reduced to 4096x2; "
                                             r"drywallqa judges images of at least 32 px a side") as info:
        read_photo(path)
    assert not info.value.too_large
    with pytest.raises(ImageSizeError, match="decoded reduced to 4096x2"):
        check_photo_size("strip.png", 100_000, 40)                          # the HTTP header check
    assert read_image(path).shape == (40, 100_000, 3)                       # a dataset image: not judged, kept


def test_thin_jpeg_is_decoded_no_thinner_than_the_minimum(tmp_path):
    path = tmp_path / "strip.jpg"
    path.write_bytes(jpeg_bytes(np.full((60, 4100, 3), 200, dtype=np.uint8)))
    # DCT scaling by 2 would give 2050x30: the strip is decoded whole, then reduced to 4096x60.
    assert read_photo(path).pixels.shape == (60, 4096, 3)
    path.write_bytes(jpeg_bytes(np.full((40, 8200, 3), 200, dtype=np.uint8)))
    with pytest.raises(ImageSizeError, match=r"strip\.jpg: image is 8200x40 px, decoded reduced to 4096x20"):
        read_photo(path)


@pytest.mark.parametrize("orientation", [1, 6])
def test_the_decoded_size_is_checked_too(tmp_path, orientation):
    path = with_orientation(tmp_path / "small.png", orientation, np.full((40, 160, 3), 200, dtype=np.uint8))
    with pytest.raises(ImageSizeError, match=r"small\.png: image is 160x40 px, decoded reduced to 128x32|"
                                             r"small\.png: image is 160x40 px, decoded reduced to 100x25"):
        read_photo(path, max_side=100)
    assert read_photo(path, max_side=128).pixels.shape[:2] == ((32, 128) if orientation == 1 else (128, 32))


# -- HEIC/HEIF: read with the heic extra, refused naming it without --------------------------------------
def test_heic_photo_is_read_with_pillow_heif(tmp_path):
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic_bytes(pattern(), orientation=6))
    assert is_heif(path.read_bytes()[:64]) and path.suffix.lower() in files.PHOTO_SUFFIXES
    photo = read_photo(path)
    # libheif turns the pixels as the file says; nothing is turned twice.
    assert photo.pixels.shape == (96, 64, 3) and (photo.width, photo.height) == (64, 96)
    expected = orient(pattern(), 6)
    assert np.mean(np.abs(photo.pixels.astype(int) - expected) < 40) > 0.97
    assert np.array_equal(photo.pixels, read_photo(path.read_bytes()).pixels)


def test_heic_without_pillow_heif_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)                   # as if not installed
    path = tmp_path / "IMG_0002.heic"
    path.write_bytes(FAKE_HEIC)
    for source in (path, path.read_bytes()):
        with pytest.raises(HeifSupportMissing, match=r'IMG_0002\.heic: HEIC/HEIF photos need pillow-heif: '
                                                     r'pip install "drywallqa\[heic\]"'):
            read_photo(source, name="IMG_0002.heic")
    assert not is_heif(jpeg_bytes(noise())) and not is_heif(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf")


# -- writes ------------------------------------------------------------------------------------------
def test_writes_into_a_read_only_folder_are_one_line_errors(read_only_dir):
    with pytest.raises(DrywallQAError, match=f"could not write {read_only_dir}/sub/out.txt"):
        atomic_write_text(read_only_dir / "sub" / "out.txt", "x")
    with pytest.raises(DrywallQAError, match=f"cannot write to {read_only_dir}: .*choose a writable folder"):
        ensure_writable(read_only_dir / "report.json", folder=False)
    assert list(read_only_dir.iterdir()) == []
