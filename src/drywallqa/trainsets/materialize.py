"""Writing a built :class:`TrainSet` to disk: images, mask PNGs and a manifest CSV.

Layout of the output folder::

    OUT/manifest.csv                        one row per item (see MANIFEST_COLUMNS)
    OUT/trainset.yaml                       the config it was built from
    OUT/augmentation.json                   the augmentation pipeline (A.to_dict)
    OUT/build.json                          fingerprint of config + records, and counts
    OUT/images/<split>/<dataset>/<path>                  originals, copied byte for byte
    OUT/augmented/train/<dataset>/<path>.aug<k>.jpg      augmented copies, rendered (JPEG q95)
    OUT/masks/<class>/<image>.png                        targets, 0/255 PNG, image size

``<path>`` is the source image's path below the folder holding all of its dataset's images in
the set (``train/a.jpg`` when a dataset's splits are folders), so two different photos of one
name (in two splits, or two folders of a source) never meet in one file: names are unique by
construction, never by luck. ``<image>`` is the item's image path above (``images/...`` or
``augmented/...``): one mask per image and class. Every part made from data (dataset, split,
class, file names) is one safe path component (:func:`drywallqa.paths.safe_component`), so a
class named ``../../x`` stays a file inside ``OUT``.

Originals are written as they are (their on-the-fly training augmentation is not rendered);
augmented copies are rendered with the deterministic seed of epoch 0. Images keep their own
size; the model's input size is applied when loading.

Every file is written atomically and files already present are skipped, so an interrupted run
resumes where it stopped. ``build.json`` holds a fingerprint of the config and the records: a
folder materialized from another build is refused rather than silently mixed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drywallqa.console import progress_bar
from drywallqa.errors import ConfigError
from drywallqa.files import atomic_write, atomic_write_json, atomic_write_text, read_json
from drywallqa.paths import safe_component, safe_relative_path
from drywallqa.trainsets.augment import augmentation_to_dict
from drywallqa.trainsets.core import TrainRecord, TrainSet
from drywallqa.trainsets.items import item_seeds, render_record
from drywallqa.trainsets.sources import image_key

MANIFEST_COLUMNS = (
    "image", "mask", "prompts", "class", "group", "dataset", "split", "augmented_from", "kind", "copy_index",
    "mask_source", "source_image", "published_split",
)
"""Manifest columns. Paths are relative to the output folder, except ``source_image`` (the
original file) and ``mask_source`` (a pseudo-mask folder, or ``annotation``/``box``/``empty``).
``prompts`` joins the record's prompts with ``|``; the first is the canonical prompt.
``augmented_from`` is the image of the original a copy was made from (empty for originals)."""

PROMPT_SEPARATOR = "|"


@dataclass(frozen=True)
class MaterializeResult:
    """What :func:`materialize` did.

    Attributes:
        out: Output folder.
        manifest: Path of the manifest CSV.
        rows: Items in the manifest.
        written: Files written by this call.
        skipped: Files already present (from an earlier, interrupted call).
    """

    out: Path
    manifest: Path
    rows: int
    written: int
    skipped: int

    def __str__(self) -> str:
        return f"wrote {self.manifest} ({self.rows} items; {self.written} files written, {self.skipped} already there)"


def fingerprint(trainset: TrainSet) -> str:
    """SHA-256 of the config and every record's provenance (image files resolved)."""
    records = [{**r.to_dict(), "image": image_key(r.image)} for r in trainset.records]
    config = trainset.config.to_dict()
    config.pop("verify_images")  # how carefully it was loaded does not change the set
    payload = json.dumps({"config": config, "records": records}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def materialize(trainset: TrainSet, out: str | os.PathLike, progress: bool = False) -> MaterializeResult:
    """Write every split of ``trainset`` under ``out`` (layout in the module docstring).

    Args:
        trainset: The built set.
        out: Output folder; created if missing, resumed if it holds an earlier run of the same build.
        progress: Show a progress bar (tqdm) on stderr.

    Returns:
        A :class:`MaterializeResult` with counts of written and skipped files.

    Raises:
        ConfigError: If ``out`` holds a materialization of a different build.
        DataError: If an image cannot be read.
    """
    out = Path(out)
    stamp = fingerprint(trainset)
    build_file = out / "build.json"
    if build_file.is_file():
        previous = read_json(build_file).get("fingerprint")
        if previous != stamp:
            raise ConfigError(
                f"{out}: holds a training set materialized from another config or other data; "
                "use a new folder or delete this one"
            )
    atomic_write_json(build_file, {"fingerprint": stamp, "items": len(trainset), "splits": trainset.splits}, indent=2)
    trainset.config.to_yaml(out / "trainset.yaml")
    atomic_write_json(out / "augmentation.json", augmentation_to_dict(trainset.augmentation()), indent=2)

    pipeline = trainset.augmentation()
    counter = {"written": 0, "skipped": 0}
    rows = []
    item_paths = ItemPaths(trainset)
    with progress_bar(len(trainset.records), "materialize", unit="item", enabled=progress) as bar:
        for record in trainset.records:
            image_rel, mask_rel = item_paths(record)
            if record.is_copy:
                seed = item_seeds(trainset.config.seed, 0, record.index)[0]
                if not ((out / image_rel).exists() and (out / mask_rel).exists()):
                    image, mask = render_record(trainset, record, pipeline, seed)
                    _write_png_or_jpg(out / image_rel, image, counter)
                    _write_mask(out / mask_rel, mask, counter)
                else:
                    counter["skipped"] += 2
            else:
                _copy_file(record.image, out / image_rel, counter)
                if (out / mask_rel).exists():
                    counter["skipped"] += 1
                else:
                    _write_mask(out / mask_rel, trainset.load_target(record), counter)
            original = trainset.records[record.augmented_from] if record.is_copy else None
            rows.append({
                "image": image_rel.as_posix(), "mask": mask_rel.as_posix(),
                "prompts": PROMPT_SEPARATOR.join(record.prompts), "class": record.class_name, "group": record.group,
                "dataset": record.dataset, "split": record.split,
                "augmented_from": item_paths(original)[0].as_posix() if original else "",
                "kind": record.kind, "copy_index": record.copy_index, "mask_source": record.mask_source,
                "source_image": str(record.image), "published_split": record.published_split,
            })
            bar.update(1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    manifest = atomic_write_text(out / "manifest.csv", buf.getvalue())
    return MaterializeResult(out, manifest, len(rows), counter["written"], counter["skipped"])


class ItemPaths:
    """``(image, mask)`` paths of each record relative to the output folder (layout in the module
    docstring), unique by construction.

    A negative shows the image of the record it was made from, so it shares that image file.
    """

    def __init__(self, trainset: TrainSet):
        self.trainset = trainset
        folders: dict[str, list[str]] = {}
        for record in trainset.records:
            folders.setdefault(record.dataset, []).append(os.path.dirname(os.path.abspath(record.image)))
        # Each dataset's images, by their path below the folder holding them all.
        self.base = {dataset: os.path.commonpath(parents) for dataset, parents in folders.items()}

    def __call__(self, record: TrainRecord) -> tuple[Path, Path]:
        shown = self.trainset.records[record.negative_of] if record.is_negative else record
        below = safe_relative_path(os.path.relpath(os.path.abspath(shown.image), self.base[shown.dataset]))
        folder = Path(safe_component(shown.split)) / safe_component(shown.dataset)
        if shown.is_copy:
            image = Path("augmented") / folder / below.parent / f"{below.name}.aug{shown.copy_index}.jpg"
        else:
            image = Path("images") / folder / below
        return image, Path("masks") / safe_component(record.class_name) / f"{image.as_posix()}.png"


def _copy_file(source: Path, dest: Path, counter: dict) -> None:
    if dest.exists():
        counter["skipped"] += 1
        return
    atomic_write(dest, lambda tmp: shutil.copyfile(source, tmp))
    counter["written"] += 1


def _write_png_or_jpg(path: Path, image: np.ndarray, counter: dict) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in {".jpg", ".jpeg"} else []
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ConfigError(f"{path}: OpenCV cannot encode {path.suffix} images")
    atomic_write(path, lambda tmp: tmp.write_bytes(data.tobytes()))
    counter["written"] += 1


def _write_mask(path: Path, mask: np.ndarray, counter: dict) -> None:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:  # pragma: no cover - PNG encoding of uint8 does not fail
        raise ConfigError(f"{path}: cannot encode mask")
    atomic_write(path, lambda tmp: tmp.write_bytes(data.tobytes()))
    counter["written"] += 1
