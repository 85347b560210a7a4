"""File helpers shared by every stage: atomic writes and image reading with clear errors.

Writes go to a temporary file in the destination folder and are renamed into place, so an
interrupted run or a full disk never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from drywallqa.errors import DataError, DrywallQAError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` only if it succeeded.

    Args:
        path: Final destination. Its parent folder is created if missing.
        write: Callback that writes the complete file at the temporary path it is given.

    Returns:
        The destination path.

    Raises:
        DrywallQAError: If the write fails (e.g. disk full); the destination is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        raise DrywallQAError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


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


@contextlib.contextmanager
def open_image(path: str | os.PathLike):
    """``PIL.Image.open`` whose failures (also while decoding inside the block) become one-line
    :class:`DataError` naming the file: missing, not an image, or corrupt/truncated."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            yield img
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{path}: not a readable image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: corrupt or truncated image ({exc})") from exc


def image_size(path: str | os.PathLike, verify: bool = True) -> tuple[int, int]:
    """Return ``(width, height)`` of an image file, checking that it decodes.

    Args:
        path: Image file.
        verify: Decode the pixel data too, so truncated files are caught. JPEGs are decoded at 1/8
            scale (DCT scaling), which reads every byte but costs about a millisecond.

    Raises:
        DataError: If the file is missing, not an image, or truncated.
    """
    with open_image(path) as img:
        size = img.size
        if verify:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()
    return size


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as an RGB ``uint8`` array of shape ``(H, W, 3)``.

    EXIF orientation is not applied: Roboflow exports and annotation tools store coordinates in
    the pixel order of the file as written.

    Raises:
        DataError: If the file is missing, not an image, or truncated.
    """
    with open_image(path) as img:
        return np.asarray(img.convert("RGB"))


def decode_image_bytes(data: bytes, name: str = "<upload>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to RGB ``uint8`` ``(H, W, 3)``."""
    import io as _io  # stdlib

    try:
        with Image.open(_io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: not a readable image ({exc})") from exc


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


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
