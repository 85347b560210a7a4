"""Paths that data names, and file names made from data: the one rule every reader and writer follows.

Data (an annotation file, a label file, a ``data.yaml``, a prediction record, a form field of an
HTTP request) may name files, and its text may become part of an output's file name. Neither may
choose where a file is read or written:

* **A file named by data** is a relative path with ``/`` separators: no root, no drive letter, no
  ``..`` part, no backslash, no NUL or other control character, no part longer than a file
  system allows. It is looked up inside the folder the data belongs to (:func:`data_file`), so it
  lies there by construction; a path that breaks the rule raises :class:`UnsafePathError` naming
  what is wrong, and readers skip that entry with one warning (an error under ``--strict``).
* **A folder named by data that may climb** (a YOLO ``data.yaml``'s ``path:`` and split entries,
  which Roboflow writes as ``../train/images``) must still resolve inside the dataset's folder
  (:func:`is_inside`).
* **A name made from data** (a class or label name, a photo's key) becomes one safe path component
  (:func:`safe_component`), never a path.

Symbolic links inside a data folder are followed: whoever made the folder made them, not the
data's text.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from drywallqa.errors import DataError

#: Longest file-name component most file systems accept, in bytes (UTF-8).
MAX_COMPONENT_BYTES = 255
#: Longest component :func:`safe_component` makes, leaving room for the suffixes outputs add
#: (``.aug3.jpg.png``) and for the temporary names of atomic writes.
SAFE_COMPONENT_BYTES = 160
#: Longest path data may name, in bytes.
MAX_PATH_BYTES = 4096
# Names Windows reserves for devices, with any suffix (``NUL.png`` is the device NUL there).
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")


class UnsafePathError(DataError):
    """A path named by data breaks the rule of :mod:`drywallqa.paths`; the message says how."""


def check_data_path(name: object) -> PurePosixPath:
    """The relative path a data entry names, checked against the rule of this module.

    Args:
        name: The path as written in the data (``"train/a.jpg"``).

    Returns:
        The path, normalised (``./a.jpg`` and ``a//b.jpg`` lose their empty and ``.`` parts).

    Raises:
        UnsafePathError: If ``name`` is not a non-empty string, holds a NUL or control character
            or a backslash, is absolute, starts with a drive letter, has a ``..`` part, or is
            over-long; the message says which.

    Example:
        >>> check_data_path("train/./a.jpg").as_posix()
        'train/a.jpg'
        >>> check_data_path("../../etc/passwd")
        Traceback (most recent call last):
        ...
        drywallqa.paths.UnsafePathError: '../../etc/passwd' climbs out of its folder with '..'
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError(f"{name!r:.80} is not a file name (expected a relative path such as 'train/a.jpg')")
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnsafePathError(f"{shown} holds a NUL or control character")
    if "\\" in name:
        raise UnsafePathError(f"{shown} holds a backslash; data names files with '/' separators")
    if re.match(r"^[A-Za-z]:", name):
        raise UnsafePathError(f"{shown} starts with a drive letter; data names files relative to its folder")
    if name.startswith("/"):
        raise UnsafePathError(f"{shown} is an absolute path; data names files relative to its folder")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise UnsafePathError(f"{shown} climbs out of its folder with '..'")
    if len(name.encode("utf-8")) > MAX_PATH_BYTES or any(
        len(part.encode("utf-8")) > MAX_COMPONENT_BYTES for part in path.parts
    ):
        raise UnsafePathError(f"{shown} is over-long (a part over {MAX_COMPONENT_BYTES} bytes, or over {MAX_PATH_BYTES} in all)")
    if not path.parts or path == PurePosixPath("."):
        raise UnsafePathError(f"{shown} names the folder itself, not a file")
    return path


def data_file(name: object, folder: str | os.PathLike) -> Path:
    """The file a data entry names, inside ``folder`` by construction (see :func:`check_data_path`).

    Raises:
        UnsafePathError: If ``name`` breaks the rule.
    """
    return Path(folder) / check_data_path(name)


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies under it, links and ``..`` resolved.

    The folders above ``path`` are resolved, not ``path`` itself: a linked file inside ``folder``
    is inside (its link was made by whoever made the folder), a ``..`` or a linked folder that
    leads out is not. A path holding a NUL is never inside.
    """
    text = os.fspath(path)
    if "\x00" in str(text):
        return False
    path = Path(path)
    try:
        where = Path(os.path.realpath(path.parent)) / path.name if path.name not in ("", ".", "..") else path.resolve()
        root = Path(folder).resolve()
    except (OSError, ValueError):
        return False
    return where == root or root in where.parents


def safe_component(text: object, *, fallback: str = "item", max_bytes: int = SAFE_COMPONENT_BYTES) -> str:
    """One safe file-name component made from data text: a class name, a label, a photo's name.

    The text is normalised to Unicode NFC; separators (``/``, ``\\``), the characters Windows
    forbids (``:*?"<>|``), NUL and control characters become ``_``; leading and trailing dots and
    spaces go; an empty result becomes ``fallback``; a Windows device name (``CON``, ``NUL.png``)
    gets a leading ``_``; a name over ``max_bytes`` bytes is shortened. Whenever the text had to
    change, a short hash of the original is added (before a file suffix, which is kept), so two
    different names never meet in one folder.

    Example:
        >>> safe_component("crack")
        'crack'
        >>> safe_component("../../../../tmp/x/pwned").startswith("_.._.._.._tmp_x_pwned-")
        True
        >>> safe_component("C:/evil.jpg").endswith(".jpg")
        True
    """
    original = str(text)
    name = unicodedata.normalize("NFC", original)
    suffix_match = _SUFFIX.search(name)
    suffix = suffix_match.group(0) if suffix_match and suffix_match.start() > 0 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    stem = _UNSAFE_CHARACTERS.sub("_", stem).strip(" .") or fallback
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = "_" + stem
    candidate = stem + suffix
    if candidate == original and len(candidate.encode("utf-8")) <= max_bytes:
        return candidate
    tag = "-" + hashlib.sha1(original.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    room = max_bytes - len((tag + suffix).encode("utf-8"))
    stem = stem.encode("utf-8")[: max(room, 1)].decode("utf-8", "ignore").rstrip(" .") or fallback
    return stem + tag + suffix


def safe_relative_path(path: str | os.PathLike) -> PurePosixPath:
    """A relative path whose every part is a :func:`safe_component` (``..`` and roots dropped)."""
    parts = [p for p in PurePosixPath(Path(path).as_posix()).parts if p not in ("/", ".", "..")]
    return PurePosixPath(*[safe_component(p) for p in parts]) if parts else PurePosixPath(safe_component(""))


# -- output names of photos and prompts ------------------------------------------------------------
def output_keys(images: Sequence[Path]) -> dict[Path, str]:
    """File-name key of each image: its stem, plus a hash of its path when stems collide.

    Keys are unique by construction, compared case-insensitively (as a Windows or macOS disk
    compares file names): a photo whose own stem equals another photo's hashed key (a file named
    ``crack-2a1f4670.jpg``) is hashed too, so no photo's outputs overwrite another's. A photo whose
    stem is unique keeps it as its key.
    """
    return _unique_names({image: _safe_name(image.stem) for image in images}, str)


def prompt_slugs(prompts: Sequence[str]) -> dict[str, str]:
    """File-name part of each prompt: lower-case words joined by ``-``, plus a hash when slugs
    collide (unique by construction, as :func:`output_keys`)."""
    return _unique_names({p: re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-")[:48] or "prompt" for p in prompts},
                         lambda p: p)


def _unique_names(bases: dict, text_of) -> dict:
    """``bases`` made unique case-insensitively: a base shared by several items gets ``-<hash of the
    item>``, and so does a base that equals another item's hashed name (once hashed, a name never
    changes again, so this ends after at most one round per item)."""
    counts = Counter(base.lower() for base in bases.values())
    names = {item: base + (f"-{_short_hash(text_of(item))}" if counts[base.lower()] > 1 else "")
             for item, base in bases.items()}
    while True:
        taken = Counter(name.lower() for name in names.values())
        clashing = [item for item, name in names.items() if taken[name.lower()] > 1]
        plain = [item for item in clashing if names[item] == bases[item]]
        for item in plain:
            names[item] = f"{bases[item]}-{_short_hash(text_of(item))}"
        if not plain:
            break
    for item in clashing:  # two hashed names alike: the whole hash of each item tells them apart
        names[item] = f"{bases[item]}-{hashlib.sha1(text_of(item).encode('utf-8')).hexdigest()}"
    return names


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
