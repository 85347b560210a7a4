"""Finding the datasets a training set is built from, and the pseudo-masks of box-only classes."""

from __future__ import annotations

import os
from pathlib import Path

from drywallqa.data.core import AnnotatedDataset, Sample
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError


def find_dataset_folders(path: str | os.PathLike) -> list[Path]:
    """The dataset folders at ``path``: the folder itself if it is a dataset, else the datasets
    directly inside it (a root such as ``shared/data`` holding ``cracks/`` and ``drywall-join/``).

    Raises:
        DataError: If ``path`` is missing, or neither it nor its sub-folders are datasets.
    """
    from drywallqa.data.formats import detect_format

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such dataset folder")
    try:
        detect_format(path)
        return [path]
    except DataError:
        if path.is_file():
            raise
    found = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            detect_format(sub)
        except DataError:
            continue
        found.append(sub)
    if not found:
        raise DataError(
            f"{path}: not a dataset and holds no dataset folders (expected <split>/_annotations.coco.json, "
            "a YOLO data.yaml or images/ + masks/, in it or in its sub-folders)"
        )
    return found


def load_datasets(
    paths: list[str | os.PathLike], prompt_config: PromptConfig, verify_images: bool = True
) -> list[AnnotatedDataset]:
    """Load every dataset found under ``paths`` (see :func:`find_dataset_folders`).

    Raises:
        ConfigError: If no path is given, or two datasets have the same name (source groups are
            keyed by dataset name, so names must be unique).
    """
    if not paths:
        raise ConfigError("trainset config: datasets is empty; pass --data DIR (a dataset or a folder of datasets)")
    folders = [folder for p in paths for folder in find_dataset_folders(p)]
    datasets = [AnnotatedDataset.load(f, prompt_config=prompt_config, verify_images=verify_images) for f in folders]
    seen: dict[str, Path] = {}
    for folder, ds in zip(folders, datasets):
        if ds.name in seen:
            raise ConfigError(
                f"trainset config: datasets: two datasets are named {ds.name!r} ({seen[ds.name]} and {folder}); "
                "rename one folder"
            )
        seen[ds.name] = folder
    return datasets


def image_key(path: str | os.PathLike) -> str:
    """Key that matches one image file however its path was written (relative, ``..``, links)."""
    return os.path.normcase(str(Path(path).resolve()))


def load_pseudo_masks(
    path: str | os.PathLike, prompt_config: PromptConfig, image_roots: list[Path] | None = None
) -> dict[str, Sample]:
    """Index a pseudo-mask dataset (written by ``drywallqa masks``) by image file.

    Its ``file_name`` entries point back at the original images, so a sample of the original
    dataset finds its pseudo-masks under ``image_key(sample.image_path)``. They may lead only
    into ``image_roots`` (the folders of the datasets the set is built from) or the source
    dataset its manifest names (:func:`drywallqa.data.formats.coco.load_coco`).

    Returns:
        ``{image_key: pseudo-mask sample}``.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"trainset config: mask_sources: {path}: no such pseudo-mask dataset (or use 'box')")
    # The images are the originals, already decoded when those were loaded.
    from drywallqa.data.formats import detect_format

    roots = {"image_roots": image_roots} if image_roots and detect_format(path) == "coco" else {}
    pseudo = AnnotatedDataset.load(path, prompt_config=prompt_config, verify_images=False, quiet=True, **roots)
    return {image_key(s.image_path): s for s in pseudo}
