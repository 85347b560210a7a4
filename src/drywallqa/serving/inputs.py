"""Inputs of a prediction run: which image files, where the outputs may go, and their file names.

:func:`collect_images` expands files, folders and globs; :func:`check_output_dir` keeps outputs
away from inputs; :func:`output_keys` and :func:`prompt_slugs` give each image and prompt the
name part of its output files (``<image>__<prompt>``), unique within a run.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from drywallqa.errors import ConfigError, DataError
from drywallqa.files import PHOTO_SUFFIXES, list_images


def collect_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (their image files, not recursive) and glob patterns, in order.

    Duplicates are dropped. A file named explicitly is kept whatever its suffix (an unreadable one
    is reported when it is read); folders and globs contribute photo suffixes only
    (:data:`~drywallqa.files.PHOTO_SUFFIXES`: HEIC/HEIF too, so that without the ``heic`` extra
    each is reported as skipped, never left out unsaid).

    Raises:
        DataError: If a path does not exist, a glob matches nothing, or nothing is found at all.
    """
    images: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = list_images(path, PHOTO_SUFFIXES)
        elif path.is_file():
            found = [path]
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise DataError(f"{text}: the pattern matches no file")
            found = [Path(m) for m in matches if Path(m).is_file() and Path(m).suffix.lower() in PHOTO_SUFFIXES]
        else:
            raise DataError(f"{text}: no such file or folder")
        images.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in images))
    if not unique:
        raise DataError(f"no image files ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return unique


def check_output_dir(out: str | os.PathLike, images: Sequence[Path], inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder that would put outputs among the inputs.

    Args:
        out: The output folder.
        images: Resolved input images.
        inputs: The input arguments (folders among them must differ from ``out``).

    Returns:
        ``out`` resolved.

    Raises:
        ConfigError: If ``out`` is a file, equals an input folder, or contains an input image.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the outputs")
    for item in inputs:
        if Path(item).is_dir() and Path(item).resolve() == out:
            raise ConfigError(f"--out {out} is the input folder {item}; choose a folder outside the inputs so they are never overwritten")
    for image in images:
        if out == image or out in image.parents:
            raise ConfigError(f"--out {out} contains the input {image}; choose a folder outside the inputs so they are never overwritten")
    return out


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
