"""Inputs of a prediction run: which image files, where the outputs may go, and their file names.

:func:`collect_images` expands files, folders and globs; :func:`check_output_dir` keeps outputs
away from inputs; :func:`~drywallqa.paths.output_keys` and :func:`~drywallqa.paths.prompt_slugs`
(re-exported here) give each image and prompt the name part of its output files
(``<image>__<prompt>``), unique within a run.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from drywallqa.errors import ConfigError, DataError
from drywallqa.files import PHOTO_SUFFIXES, list_images
from drywallqa.paths import output_keys, prompt_slugs  # noqa: F401  (their home: the rule for names made from data)


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
