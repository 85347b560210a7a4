"""What PIL alone does not decode right: JPEG scan errors, the EXIF orientation of photos, HEIC/HEIF.

PIL ignores libjpeg's warnings and returns whatever a damaged scan decodes to;
:func:`check_jpeg_data` turns them into errors (libjpeg-turbo through ``simplejpeg``, strict).

A phone held upright stores its pixels sideways and says so in the EXIF ``Orientation`` tag (1 to
8); every viewer shows the photo turned. :func:`orient` turns decoded pixels the way
:func:`PIL.ImageOps.exif_transpose` does, so that the masks, overlays and figures of a judged photo
are in the orientation a viewer shows (:func:`drywallqa.files.read_photo`). Dataset images keep
their file's pixel order: annotation tools store coordinates that way.

HEIC/HEIF, the iPhone's default, is read through ``pillow-heif`` (the ``heic`` extra), registered
with PIL when the first HEIF file is met; without it such a file is refused with the install
command (:class:`HeifSupportMissing`), never taken for a broken image.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import numpy as np
from PIL import Image

from drywallqa.errors import DataError

#: The EXIF tag of the orientation (TIFF tag 274).
ORIENTATION_TAG = 0x0112
#: File suffixes of HEIC/HEIF photos.
HEIF_SUFFIXES = (".heic", ".heif")
HEIF_INSTALL = 'pip install "drywallqa[heic]"'
# ftyp brands of HEVC-coded HEIF (iPhone photos: major brand heic, or mif1 with heic compatible).
# AVIF shares the container but not these brands.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}

# Orientation -> the turn of an (H, W, ...) array that shows it upright (PIL's Transpose methods).
_TURNS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],                       # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],                    # ROTATE_180
    4: lambda a: a[::-1],                          # FLIP_TOP_BOTTOM
    5: lambda a: a.swapaxes(0, 1),                 # TRANSPOSE
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],        # ROTATE_270 (90 degrees clockwise)
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),     # TRANSVERSE
    8: lambda a: a.swapaxes(0, 1)[::-1],           # ROTATE_90 (90 degrees counter-clockwise)
}


def check_jpeg_data(data: bytes, name: str) -> None:
    """Raise :class:`DataError` when libjpeg reports corrupt or truncated scan data.

    PIL ignores libjpeg's warnings and returns whatever the damaged scan decodes to (grey blocks,
    smeared colours), which a model then judges. libjpeg-turbo through ``simplejpeg`` in strict
    mode turns them into errors; the check decodes at 1/8 scale, which reads every byte.
    """
    import simplejpeg

    try:
        colorspace = simplejpeg.decode_jpeg_header(data)[2]
        output = {"GRAY": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(colorspace, "RGB")
        simplejpeg.decode_jpeg(data, colorspace=output, min_height=1, min_width=1, min_factor=8, strict=True)
    except ValueError as exc:
        raise DataError(f"{name}: corrupt or truncated JPEG data ({exc})") from exc


class HeifSupportMissing(DataError):
    """A HEIC/HEIF photo met without ``pillow-heif`` installed (the ``heic`` extra)."""


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` as a viewer shows them under EXIF ``orientation``.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)`` array in the file's pixel order.
        orientation: EXIF orientation, 1 (as stored) to 8; 5 to 8 swap height and width.

    Returns:
        A contiguous array (``pixels`` itself for orientation 1).

    Raises:
        ValueError: For an orientation outside 1-8.
    """
    if orientation == 1:
        return pixels
    if orientation not in _TURNS:
        raise ValueError(f"EXIF orientation must be 1 to 8, got {orientation!r}")
    return np.ascontiguousarray(_TURNS[orientation](pixels))


def turn(pixels: np.ndarray, width: int, height: int, orientation: int) -> tuple[np.ndarray, int, int]:
    """A photo's decoded ``pixels`` (possibly reduced) and full size, as a viewer shows them under
    EXIF ``orientation``: 5 to 8 turn it by a quarter, so width and height trade places."""
    return orient(pixels, orientation), *((height, width) if orientation >= 5 else (width, height))


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation of an open image (1 when absent, out of range or unreadable).

    A PNG whose EXIF follows its pixel data is loaded by this call (PIL finds the chunk only
    then): call it after decoding.
    """
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error):
        return 1  # a damaged EXIF block: the pixels are still the photo, as stored
    return value if isinstance(value, int) and value in range(1, 9) else 1


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation of an encoded JPEG, read from its header alone (tens of microseconds)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return exif_orientation(img)
    except (OSError, SyntaxError, ValueError, EOFError):
        return 1


def is_heif(head: bytes) -> bool:
    """Whether ``head``, a file's first bytes (64 suffice), starts a HEIC/HEIF file: an ISO media
    ``ftyp`` box whose major or a compatible brand is a HEVC image brand."""
    if head[4:8] != b"ftyp":
        return False
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = [head[8:12], *(head[i : i + 4] for i in range(16, end - 3, 4))]
    return any(brand in _HEIF_BRANDS for brand in brands)


def enable_heif(name: str) -> None:
    """Let PIL open HEIC/HEIF files (``pillow-heif``'s opener, registered once).

    Raises:
        HeifSupportMissing: Naming the file and the install command, without ``pillow-heif``.
    """
    global _heif_registered
    try:
        import pillow_heif
    except ImportError as exc:
        raise HeifSupportMissing(f"{name}: HEIC/HEIF photos need pillow-heif: {HEIF_INSTALL}") from exc
    if not _heif_registered:
        pillow_heif.register_heif_opener()
        _heif_registered = True


_heif_registered = False
