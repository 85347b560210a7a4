"""Photos with an EXIF orientation, and HEIC photos, built in code for the orientation and HEIC tests."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

#: The first bytes of an iPhone photo: an ftyp box of major brand heic (the rest need not decode,
#: for tests of what happens without pillow-heif).
FAKE_HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)


def pattern(height: int = 64, width: int = 96) -> np.ndarray:
    """Light grey with two dark blocks of different sizes (top left, bottom right), on the 8 px JPEG
    grid: none of the 8 orientations maps it onto itself or onto another's."""
    image = np.full((height, width, 3), 230, dtype=np.uint8)
    image[:16, :32] = 20
    image[height - 24 :, width - 16 :] = 20
    return image


def with_orientation(path, orientation: int, image: np.ndarray | None = None):
    """Save ``image`` (default :func:`pattern`) to ``path`` (JPEG at quality 95, or PNG) with the
    EXIF orientation tag; returns ``path``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if str(path).lower().endswith(".jpg") else {}
    Image.fromarray(pattern() if image is None else image).save(path, exif=exif.tobytes(), **options)
    return path


def shown(path) -> np.ndarray:
    """The file as a viewer shows it: PIL's own EXIF transpose, RGB."""
    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def heic_bytes(image: np.ndarray, orientation: int = 1) -> bytes:
    """``image`` encoded as HEIC with an EXIF orientation (the test is skipped without pillow-heif)."""
    pillow_heif = pytest.importorskip("pillow_heif", reason="HEIC needs pillow-heif (pip install 'drywallqa[heic]')")
    pillow_heif.register_heif_opener()
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="HEIF", quality=95, exif=exif.tobytes())
    return buffer.getvalue()
