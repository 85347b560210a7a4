"""Dataset file formats. Each module turns one on-disk layout into an :class:`AnnotatedDataset`."""

from __future__ import annotations

import os
from pathlib import Path

from drywallqa.data.formats.coco import ANNOTATION_FILE
from drywallqa.errors import DataError

FORMATS = ("coco", "yolo", "mask-folder")


def detect_format(path: str | os.PathLike) -> str:
    """Guess a dataset's format from its layout.

    * ``coco``: a ``.json`` file, or ``_annotations.coco.json`` in the folder or its split folders;
    * ``yolo``: a ``data.yaml`` / ``data.yml`` in the folder;
    * ``mask-folder``: an ``images/`` and a ``masks/`` folder, directly or in split folders.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "coco"
        if path.name.lower() in {"data.yaml", "data.yml"}:
            return "yolo"
        raise DataError(f"{path}: unknown dataset file (expected a COCO .json or a YOLO data.yaml)")
    if (path / ANNOTATION_FILE).is_file() or any((p / ANNOTATION_FILE).is_file() for p in _subdirs(path)):
        return "coco"
    if (path / "data.yaml").is_file() or (path / "data.yml").is_file():
        return "yolo"
    if _is_mask_folder(path) or any(_is_mask_folder(p) for p in _subdirs(path)):
        return "mask-folder"
    raise DataError(
        f"{path}: unknown dataset layout (expected <split>/{ANNOTATION_FILE}, a YOLO data.yaml, "
        "or images/ + masks/ folders)"
    )


def _subdirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()]


def _is_mask_folder(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "masks").is_dir()
