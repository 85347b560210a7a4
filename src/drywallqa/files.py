"""File helpers shared by every stage: atomic writes and image reading with clear errors.

Writes go to a temporary file in the destination folder and are renamed into place, so an
interrupted run or a full disk never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from drywallqa.errors import DataError, DrywallQAError, ImageSizeError
from drywallqa.image_codecs import (
    HEIF_SUFFIXES,
    check_jpeg_data,
    enable_heif,
    exif_orientation,
    is_heif,
    jpeg_orientation,
    turn,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Suffixes of photos to judge (``predict``'s folders): HEIC/HEIF too, read with the ``heic`` extra;
#: without it each such photo is skipped with one line naming the extra, never left out unsaid.
PHOTO_SUFFIXES = IMAGE_SUFFIXES + HEIF_SUFFIXES


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` only if it succeeded.

    Args:
        path: Final destination. Its parent folder is created if missing.
        write: Callback that writes the complete file at the temporary path it is given.

    Returns:
        The destination path.

    Raises:
        DrywallQAError: If the write fails (e.g. disk full); the destination is left untouched.
    """

    def through_path(fd: int, tmp: Path) -> None:
        os.close(fd)
        write(tmp)

    return _write_and_rename(Path(path), through_path)


def _write_and_rename(path: Path, write: Callable[[int, Path], None]) -> Path:
    """A temporary file beside ``path``, ``write(fd, tmp)`` (which closes ``fd``), then the rename."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise DrywallQAError(f"could not write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    renamed = False
    try:
        write(fd, tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        renamed = True
    except OSError as exc:
        raise DrywallQAError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        if not renamed:
            tmp.unlink(missing_ok=True)
    return path


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


# Read once, at import: ``os.umask`` can only be read by setting it, which races with other threads
# (predict's writer pool) creating files.
_UMASK = _read_umask()


def ensure_writable(path: str | os.PathLike, *, folder: bool = True) -> Path:
    """Fail now, not after minutes of work, when outputs cannot be written to ``path``.

    Args:
        path: An output folder (created if missing), or with ``folder=False`` an output file
            (its folder is checked).

    Returns:
        ``path``.

    Raises:
        DrywallQAError: One line naming the folder, if it cannot be created or written into.
    """
    path = Path(path)
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise DrywallQAError(f"cannot write to {target}: {exc.strerror or exc} (choose a writable folder)") from exc
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (through the temporary file's descriptor: one open per
    file, which counts when ``predict`` writes thousands)."""

    def through_fd(fd: int, tmp: Path) -> None:
        with os.fdopen(fd, "wb") as file:
            file.write(data)

    return _write_and_rename(Path(path), through_fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Serialise ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising :class:`DataError` naming the file and position on failure."""
    path = Path(path)
    try:
        with path.open("r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc



#: Photos smaller than this on either side are refused by ``predict`` and ``serve`` (a skip with one
#: line, HTTP 422): the model sees a 448 px square, and an image a few pixels wide stretched to it
#: gives a mask and a verdict about nothing.
MIN_IMAGE_SIDE = 32
#: The most pixels decoded from one file: 100 megapixels, 300 MB as RGB. A larger JPEG is decoded
#: at 1/2, 1/4 or 1/8 scale (DCT scaling, never the full image) where a reduced image will do
#: (``predict``, ``serve``); any other larger file, and any larger image of a dataset, is refused
#: with one line naming it.
MAX_DECODE_PIXELS = 100_000_000
#: ``predict`` and ``serve`` decode photos reduced to at most this long side (the model sees a
#: 448 px square; masks and overlays are written at the reduced size, QA figures are given in the
#: file's pixels).
PHOTO_MAX_SIDE = 4096


@dataclass(frozen=True)
class Photo:
    """A decoded photo: its pixels, possibly reduced, and its full size, both as a viewer shows it.

    Attributes:
        pixels: RGB ``uint8`` ``(h, w, 3)``, turned by ``orientation``.
        width: Full width of the photo as shown: the file's width, or its height when
            ``orientation`` turns it by a quarter (5 to 8).
        height: Full height of the photo as shown.
        orientation: The EXIF orientation applied to the file's pixels, 1 (none) to 8. (A HEIF's
            own rotation and mirroring are part of its pixels: its decoder applies them.)
    """

    pixels: np.ndarray
    width: int
    height: int
    orientation: int = 1

    def __post_init__(self):
        if self.orientation not in range(1, 9):
            raise ValueError(f"orientation must be an EXIF orientation, 1 to 8, got {self.orientation!r}")

    @property
    def scale(self) -> float:
        """File pixels per decoded pixel (1.0 when decoded at full size)."""
        return self.width / self.pixels.shape[1]

    def __repr__(self) -> str:
        h, w = self.pixels.shape[:2]
        turned = f", orientation {self.orientation}" if self.orientation != 1 else ""
        return f"Photo({self.width}x{self.height}, decoded {w}x{h}{turned})"


@contextlib.contextmanager
def open_image(source: str | os.PathLike | bytes, name: str | None = None):
    """``PIL.Image.open`` whose failures (also while decoding inside the block) become one-line
    :class:`DataError` naming the file: missing, not an image, or corrupt/truncated.

    Args:
        source: A path, or the encoded bytes of an image.
        name: What messages call it (default: the path, or ``<upload>`` for bytes).

    PIL's decompression-bomb warnings are silenced (:data:`MAX_DECODE_PIXELS` is checked by the
    readers instead), and a JPEG over PIL's own limit still opens, so that it can be decoded reduced.
    A HEIC/HEIF file opens through ``pillow-heif`` (the ``heic`` extra); without it the error is
    :class:`~drywallqa.image_codecs.HeifSupportMissing`, naming the extra.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    name = name or ("<upload>" if is_bytes else str(source))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)
            with _open_unchecked(opened, name) as img:
                yield img
    except FileNotFoundError as exc:
        raise DataError(f"{name}: image file not found") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{name}: is a folder, not an image") from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{name}: not a readable image") from exc
    except Image.DecompressionBombError as exc:
        raise ImageSizeError(f"{name}: image has too many pixels (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} "
                             f"megapixels); drywallqa decodes at most {MAX_DECODE_PIXELS / 1e6:.0f}", too_large=True) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{name}: corrupt or truncated image ({exc})") from exc


def _open_unchecked(fp: Path | io.BytesIO, name: str) -> Image.Image:
    """``Image.open``; a JPEG that PIL refuses as a decompression bomb is opened without that check,
    a HEIF through ``pillow-heif``."""
    if isinstance(fp, Path):
        with open(fp, "rb") as file:
            head = file.read(64)
    else:
        head = fp.getvalue()[:64]
    if is_heif(head):
        enable_heif(name)
    try:
        return Image.open(fp)
    except Image.DecompressionBombError:
        if not (_is_jpeg_file(fp) if isinstance(fp, Path) else fp.getvalue()[:3] == b"\xff\xd8\xff"):
            raise
        if isinstance(fp, io.BytesIO):
            fp.seek(0)
        return JpegImagePlugin.JpegImageFile(fp)


def image_size(path: str | os.PathLike, verify: bool = True) -> tuple[int, int]:
    """Return ``(width, height)`` of an image file, checking that it decodes.

    Args:
        path: Image file.
        verify: Decode the pixel data too, so truncated and corrupt files are caught, and refuse
            images over :data:`MAX_DECODE_PIXELS`. JPEGs are decoded at 1/8 scale (DCT scaling),
            which reads every byte but costs about a millisecond.

    Raises:
        DataError: If the file is missing, not an image, truncated or corrupt, or too large.
    """
    with open_image(path) as img:
        size = img.size
        if verify:
            _check_decodable(img, str(path), size)
            if img.format == "JPEG":
                check_jpeg_data(Path(path).read_bytes(), str(path))
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()
    return size


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image at full size as an RGB ``uint8`` array of shape ``(H, W, 3)``.

    EXIF orientation is not applied: Roboflow exports and annotation tools store coordinates in
    the pixel order of the file as written. 16-bit and 32-bit integer images are scaled to 8 bits
    by the range of their type (a 16-bit value ``v`` becomes ``v / 257``; 32-bit values that fit
    in 8 or 16 bits are taken as such), float images by ``[0, 1]`` (or ``[0, 255]`` when their
    values lie there; other ranges are stretched from their minimum to their maximum).

    Raises:
        DataError: If the file is missing, not an image, truncated, corrupt, or over
            :data:`MAX_DECODE_PIXELS`.
    """
    return _decode(Path(path).read_bytes() if _is_jpeg_file(path) else path, str(path), max_side=None).pixels


def read_photo(source: str | os.PathLike | bytes, *, name: str | None = None,
               max_side: int | None = PHOTO_MAX_SIDE, min_side: int = MIN_IMAGE_SIDE) -> Photo:
    """Read a photo to judge, turned as a viewer shows it and decoded reduced when it is large
    (what ``predict``, ``serve`` and ``watch``'s photos use).

    Its EXIF orientation (1 to 8, e.g. a phone photo held upright) is applied, unlike
    :func:`read_image`'s dataset images, so masks, overlays and figures are in the orientation a
    viewer shows; HEIC/HEIF is read with the ``heic`` extra.

    Args:
        source: Image file or encoded bytes.
        name: What messages call it (default: the path, or ``<upload>``).
        max_side: Decode to at most this long side (JPEGs by DCT scaling, others by area
            averaging after decoding); None for full size.
        min_side: Refuse images with a side shorter than this, in the file and as decoded.

    Returns:
        The pixels as RGB ``uint8``, the photo's full size as shown, and the orientation
        applied; see :func:`read_image` for how 16-bit and float images are converted.

    Raises:
        ImageSizeError: If a side is under ``min_side``, in the file or once reduced to
            ``max_side`` (a 100000x40 strip is 4096x2), or the file is over
            :data:`MAX_DECODE_PIXELS` even reduced.
        DataError: If it is missing, not an image, truncated or corrupt; a HEIC/HEIF without the
            ``heic`` extra is :class:`~drywallqa.image_codecs.HeifSupportMissing`.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    name = name or ("<upload>" if is_bytes else str(source))
    if not isinstance(source, (bytes, bytearray, memoryview)) and _is_jpeg_file(source):
        source = Path(source).read_bytes()
    return _decode(source, name, max_side=max_side, min_side=min_side, turned=True)


def check_photo_size(name: str, width: int, height: int, *, max_side: int | None = PHOTO_MAX_SIDE,
                     min_side: int = MIN_IMAGE_SIDE, decoded: tuple[int, int] | None = None) -> None:
    """Refuse a photo too small to judge: under ``min_side`` a side in the file, or as ``decoded``
    (by default: once reduced to ``max_side`` on its long side, as :func:`read_photo` does).

    Raises:
        ImageSizeError: One line naming ``name``, its size and the minimum.
    """
    if min(width, height) < min_side:
        raise ImageSizeError(f"{name}: image is {width}x{height} px; drywallqa judges images of at least "
                             f"{min_side} px a side (a smaller one gives a verdict about nothing)")
    if decoded is None and max_side and max(width, height) > max_side:
        factor = max(width, height) / max_side
        decoded = (max(1, round(width / factor)), max(1, round(height / factor)))
    if decoded and min(decoded) < min_side:
        raise ImageSizeError(f"{name}: image is {width}x{height} px, decoded reduced to {decoded[0]}x{decoded[1]}; "
                             f"drywallqa judges images of at least {min_side} px a side (a strip this thin gives a "
                             "verdict about nothing)")


def decode_image_bytes(data: bytes, name: str = "<upload>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to RGB ``uint8`` ``(H, W, 3)`` at full size."""
    return _decode(data, name, max_side=None).pixels


def _is_jpeg_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False  # open_image reports it


def _check_decodable(img: Image.Image, name: str, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_DECODE_PIXELS:
        raise ImageSizeError(
            f"{name}: image is {width}x{height} = {width * height / 1e6:.0f} megapixels; drywallqa decodes at most "
            f"{MAX_DECODE_PIXELS / 1e6:.0f}" + (" (a JPEG up to 64 times that, reduced, for predict and serve)"
                                                 if img.format == "JPEG" else ""), too_large=True)


def _decode(source: str | os.PathLike | bytes, name: str, max_side: int | None, min_side: int = 1,
            turned: bool = False) -> Photo:
    """Open, check and decode: JPEG scan check, size limits, reduced decoding, 8-bit RGB, and with
    ``turned`` the EXIF orientation."""
    if isinstance(source, (bytes, bytearray, memoryview)) and bytes(source[:3]) == b"\xff\xd8\xff":
        photo = _decode_plain_jpeg(bytes(source), name, max_side, min_side, turned)
        if photo is not None:
            return photo
        check_jpeg_data(bytes(source), name)
    with open_image(source, name) as img:
        width, height = img.size
        check_photo_size(name, width, height, max_side=max_side, min_side=min_side)
        factor = math.ceil(max(width, height) / max_side) if max_side else 1
        if img.format == "JPEG" and factor > 1:
            # DCT scaling by at most the reduction, and never below the minimum side.
            factor = min(factor, max(1, min(width, height) // min_side))
            img.draft(None, (max(1, width // factor), max(1, height // factor)))
        _check_decodable(img, name, img.size)
        pixels = _to_rgb8(img)
        orientation = exif_orientation(img) if turned else 1
    if max_side and max(pixels.shape[:2]) > max_side:
        import cv2

        factor = max(pixels.shape[:2]) / max_side
        size = (max(1, round(pixels.shape[1] / factor)), max(1, round(pixels.shape[0] / factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    check_photo_size(name, width, height, min_side=min_side, decoded=pixels.shape[1::-1])
    return Photo(*turn(np.ascontiguousarray(pixels), width, height, orientation), orientation)


def _decode_plain_jpeg(data: bytes, name: str, max_side: int | None, min_side: int, turned: bool) -> Photo | None:
    """An RGB or grey JPEG that needs no reduction, decoded in one strict libjpeg-turbo pass: the
    scan check and the pixels at once (the same pixels as PIL's, at half the cost of checking and
    decoding apart). None for everything else, which :func:`_decode` handles with PIL."""
    import simplejpeg

    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if (colorspace not in ("YCbCr", "Gray", "RGB") or min(width, height) < min_side or width * height > MAX_DECODE_PIXELS
            or (max_side and max(width, height) > max_side)):
        return None
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        raise DataError(f"{name}: corrupt or truncated JPEG data ({exc})") from exc
    orientation = jpeg_orientation(data) if turned else 1
    return Photo(*turn(np.ascontiguousarray(pixels), width, height, orientation), orientation)


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """RGB ``uint8`` pixels of a PIL image; 16/32-bit integer and float modes scaled (see read_image)."""
    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return np.asarray(img.convert("RGB"))
    values = np.asarray(img)
    if img.mode == "F":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1:
            grey = values * 255
        elif low >= 0 and high <= 255:
            grey = values
        else:
            grey = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    else:  # I;16*: 16-bit; I: 32-bit signed, often 8- or 16-bit values in a wider container
        values = values.astype(np.int64)
        low, high = int(values.min()), int(values.max())
        if img.mode == "I" and low >= 0 and high <= 255:
            grey = values
        elif low >= 0 and high <= 65535:
            grey = values / 257
        else:
            grey = (values - low) * (255 / (high - low)) if high > low else np.zeros_like(values)
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> Path:
    """Write an RGB or single-channel ``uint8`` array atomically (format from the suffix)."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower(), None)
    img = Image.fromarray(np.ascontiguousarray(image))

    def _write(tmp: Path) -> None:
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        img.save(tmp, format=fmt, **kwargs)

    return atomic_write(path, _write)


def relative_id(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` in POSIX form (the full path if it lies outside): a stable
    image id for formats whose files carry none."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def list_images(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly inside ``folder`` (by their ``suffixes``), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def user_cache_dir(kind: str) -> Path:
    """Where drywallqa keeps what it makes once and reuses (``kind``: ``onnx``, ``synthetic``):
    ``$DRYWALLQA_CACHE/<kind>``, else ``$XDG_CACHE_HOME/drywallqa/<kind>`` (``~/.cache/drywallqa/<kind>``)."""
    if os.environ.get("DRYWALLQA_CACHE"):
        return Path(os.environ["DRYWALLQA_CACHE"]) / kind
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drywallqa" / kind
