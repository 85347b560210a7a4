"""`drywallqa.files`: how images of every kind are read, refused or reduced, and writes that fail cleanly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from drywallqa import files
from drywallqa.errors import DataError, DrywallQAError, ImageSizeError
from drywallqa.files import (
    atomic_write_text,
    decode_image_bytes,
    ensure_writable,
    image_size,
    read_image,
    read_photo,
)


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
    reduced = read_photo(jpeg, max_side=40)
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
    photo = read_photo(path, max_side=100)
    assert photo.pixels.shape == (30, 100, 3) and photo.scale == 3.0
    assert read_photo(path, max_side=None).pixels.shape == (90, 300, 3)


# -- writes ------------------------------------------------------------------------------------------
def test_writes_into_a_read_only_folder_are_one_line_errors(read_only_dir):
    with pytest.raises(DrywallQAError, match=f"could not write {read_only_dir}/sub/out.txt"):
        atomic_write_text(read_only_dir / "sub" / "out.txt", "x")
    with pytest.raises(DrywallQAError, match=f"cannot write to {read_only_dir}: .*choose a writable folder"):
        ensure_writable(read_only_dir / "report.json", folder=False)
    assert list(read_only_dir.iterdir()) == []
