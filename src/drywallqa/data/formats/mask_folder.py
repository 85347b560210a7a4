"""Images with a parallel folder of mask PNGs (semantic-segmentation exports).

Layout::

    <dataset>/[<split>/]images/<stem>.jpg|png|...
    <dataset>/[<split>/]masks/<stem>.png          # same stem as its image
    <dataset>/classes.txt | classes.yaml          # optional class names

A mask is single-channel, the size of its image, and either

* **binary**, values ``{0, 255}`` or ``{0, 1}``: one class, named by ``class_names[0]``, the
  classes file, or else the dataset folder's name (``cracks/`` -> class ``crack``); or
* **class indices**, pixel value ``i`` = class ``i`` for ``i = 1..K`` and ``0`` = background, when
  more than one class is declared, or when no class is declared and some mask holds values
  between 2 and 254 (the classes are then named ``class_<i>``).

The classes file lists foreground classes in pixel-value order, one per line (``classes.txt``)
or as a YAML list; a first entry named ``background`` stands for value 0. ``classes.yaml`` may
also be a ``{value: name}`` mapping, or either form under a ``names`` key.

Each class present in a mask becomes one :class:`Annotation` with the class mask as RLE and its
tight box. An all-zero mask marks a background image. An image without a mask file is skipped
(and counted), not taken as background: a missing mask is far more often a lost file than an
empty image, and a background image is written as an all-zero mask.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample, canonical_split
from drywallqa.data.formats.coco import SPLIT_FOLDERS
from drywallqa.data.groups import source_group
from drywallqa.data.masks import float_box, mask_to_box, mask_to_rle
from drywallqa.data.prompts import PromptConfig, normalise_name
from drywallqa.errors import ConfigError, DataError, IssueLog
from drywallqa.files import image_size, list_images, open_image, relative_id
from drywallqa.yamlio import parse_yaml

IMAGE_FOLDER = "images"
MASK_FOLDER = "masks"
MASK_SUFFIX = ".png"
CLASS_FILES = ("classes.txt", "classes.yaml", "classes.yml")
BACKGROUND_NAMES = {"background", "bg", "void"}


def find_mask_folders(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """``[(split, folder)]`` of folders holding ``images/`` and ``masks/``: ``path`` itself (split
    ``""``, or its name if it is a split folder), else each subfolder (split = its name)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder" if not path.exists() else f"{path}: expected a dataset folder")
    if _has_images_and_masks(path):
        return [(canonical_split(path.name) if path.name.lower() in SPLIT_FOLDERS else "", path)]
    found = sorted((canonical_split(p.name), p) for p in path.iterdir() if _has_images_and_masks(p))
    if not found:
        raise DataError(
            f"{path}: no {IMAGE_FOLDER}/ + {MASK_FOLDER}/ folders in it or in its split folders "
            f"(expected [<split>/]{IMAGE_FOLDER}/<stem>.jpg and [<split>/]{MASK_FOLDER}/<stem>{MASK_SUFFIX})"
        )
    return found


def load_mask_folder(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    prompt_config: PromptConfig | None = None,
    strict: bool = False,
    quiet: bool = False,
    verify_images: bool = True,
    issues: IssueLog | None = None,
) -> AnnotatedDataset:
    """Load images and their mask PNGs into an :class:`AnnotatedDataset`.

    Args:
        path: Dataset root holding ``images/`` + ``masks/`` directly or in split folders, or one
            split folder.
        name: Dataset name; defaults to the root folder's name.
        class_names: Foreground classes in pixel-value order (value ``i`` = ``class_names[i-1]``;
            a leading ``"background"`` entry stands for value 0), or a ``{value: name}`` mapping.
            Overrides a classes file. One class means binary masks.
        prompt_config: Maps class names to prompt classes; the built-in config by default.
        strict: Raise :class:`DataError` at the first bad entry instead of skipping it.
        quiet: Do not print a warning line per skipped entry (they are still counted).
        verify_images: Decode every image to catch unreadable and truncated files.
        issues: Log to add skipped entries to (a new one by default).

    Returns:
        The dataset. Each annotation has ``rle`` (compressed COCO RLE of its class mask, image
        size) and ``box`` (tight ``(x1, y1, x2, y2)`` pixels, exclusive right/bottom edge).
        Skipped images and masks are in ``dataset.issues``.

    Raises:
        DataError: If there are no ``images/`` + ``masks/`` folders or the classes file is
            invalid; or in strict mode at the first bad entry.
        ConfigError: If ``class_names`` is empty or not names.
    """
    folders = find_mask_folders(path)
    path = Path(path)
    split_layout = folders[0][1] != path
    # One split folder given: the dataset is the folder above it (as for COCO).
    root = path.parent if not split_layout and folders[0][0] else path
    name = name or root.resolve().name
    prompt_config = prompt_config or PromptConfig.default()
    log = issues if issues is not None else IssueLog(strict=strict, quiet=quiet)

    declared = _declared_classes(class_names, [root, path])
    records: list[_MaskRecord] = []
    if split_layout:
        _log_folders_without_masks(path, log)
    for split, folder in folders:
        records.extend(_read_split(folder, split, root, log, verify_images))
    if declared is None:
        declared = _inferred_classes(records, root.resolve().name)
    class_of = {value: prompt_config.resolve(category).name for value, category in declared.items()}

    samples = []
    for record in records:
        annotations = _annotations(record, declared, class_of, log)
        if annotations is not None:
            samples.append(
                Sample(
                    image_path=record.image_path, width=record.width, height=record.height, split=record.split,
                    dataset=name, group=source_group(record.image_path.name), annotations=tuple(annotations),
                    image_id=record.image_id,
                )
            )
    log.report_hidden()
    return AnnotatedDataset(name, samples, tuple(sorted(set(class_of.values()))), root, log, "mask-folder")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask file as a 2-D integer array of pixel values (palette masks give their indices).

    Greyscale RGB(A) masks give one channel.

    Raises:
        DataError: If the file is missing, not an image, truncated, or a colour mask.
    """
    path = Path(path)
    values, mode = _decode_mask(path)
    return _mask_values(values, mode, path)


def _decode_mask(path: Path) -> tuple[np.ndarray, str]:
    """The decoded pixels and PIL mode; raises :class:`DataError` if the file cannot be read."""
    with open_image(path) as img:
        return np.asarray(img), img.mode


def _mask_values(values: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """One channel of integer values; raises :class:`DataError` for colour or float masks."""
    if values.ndim == 3:
        # LA / PA: one value channel plus alpha; RGB(A): a greyscale mask saved in colour.
        channels = values[..., : 1 if values.shape[2] == 2 else 3]
        if not (channels == channels[..., :1]).all():
            raise DataError(
                f"{path}: colour mask ({mode} with differing channels); expected one channel of class values"
            )
        values = channels[..., 0]
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{path}: {mode} mask with {values.dtype} pixels; expected integer class values")
    return values


# -- classes ---------------------------------------------------------------------------------------
def _declared_classes(
    class_names: Sequence[str] | Mapping[int, str] | None, folders: list[Path]
) -> dict[int, str] | None:
    """``{pixel value: class name}`` from the argument, else the first classes file found, else None."""
    if class_names is not None:
        if isinstance(class_names, str) or not class_names:
            raise ConfigError(
                f"class_names must be a non-empty list of names or {{value: name}}, got {class_names!r}"
            )
        return _value_map(class_names, "class_names", ConfigError)
    for folder in dict.fromkeys(folders):
        for file_name in CLASS_FILES:
            file = folder / file_name
            if file.is_file():
                return _read_class_file(file)
    return None


def _read_class_file(file: Path) -> dict[int, str]:
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: cannot read ({exc})") from exc
    if file.suffix == ".txt":
        names: object = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = parse_yaml(text, file, DataError)
        if isinstance(names, dict) and "names" in names:
            names = names["names"]
    if not isinstance(names, (list, dict)) or not names:
        raise DataError(f"{file}: expected a non-empty list of class names or {{value: name}}, got {names!r:.80}")
    return _value_map(names, str(file), DataError)


def _value_map(names: Sequence | Mapping, source: str, error: type[Exception]) -> dict[int, str]:
    """``{pixel value >= 1: name}`` from a value-ordered list or a ``{value: name}`` mapping."""
    if isinstance(names, Mapping):
        pairs = []
        for key, value in names.items():
            if isinstance(key, bool) or not str(key).strip().isdigit():
                raise error(f"{source}: {key!r} is not a pixel value (expected {{1: name, 2: name, ...}})")
            pairs.append((int(key), value))
    else:
        first_is_background = _is_background(names[0])
        pairs = [(i if first_is_background else i + 1, n) for i, n in enumerate(names)]
    mapping = {}
    for value, class_name in pairs:
        if not isinstance(class_name, str) or not class_name.strip():
            raise error(f"{source}: class names must be non-empty strings, got {class_name!r}")
        if value == 0:
            if not _is_background(class_name):
                raise error(f"{source}: value 0 is background, but it is named {class_name!r}; number classes from 1")
            continue
        mapping[value] = class_name.strip()
    if not mapping:
        raise error(f"{source}: no foreground class (only background)")
    return mapping


def _is_background(class_name: object) -> bool:
    return isinstance(class_name, str) and normalise_name(class_name).strip("_ ") in BACKGROUND_NAMES


def _inferred_classes(records: list[_MaskRecord], root_name: str) -> dict[int, str]:
    """Classes when none is declared: binary masks -> one class named after the dataset folder;
    masks with values 2..254 -> class indices named ``class_<i>``.

    Masks holding 255 beside other values do not count as index masks: that is a binary mask
    resized with interpolation, and it must not turn every clean 0/255 mask into class 255.
    """
    index_masks = [r for r in records if r.parts and max(r.parts) < 255]
    index_values = sorted({v for r in index_masks for v in r.parts})
    if index_values and index_values[-1] >= 2:
        return {v: f"class_{v}" for v in index_values}
    return {1: root_name}


# -- masks -----------------------------------------------------------------------------------------
@dataclass
class _MaskRecord:
    """An image with its decoded mask: the class masks per pixel value, as RLE and box."""

    image_path: Path
    mask_path: Path
    image_id: str
    split: str
    width: int
    height: int
    parts: dict[int, tuple[dict, tuple[float, float, float, float]]] = field(default_factory=dict)


def _read_split(folder: Path, split: str, root: Path, log: IssueLog, verify_images: bool) -> list[_MaskRecord]:
    image_folder, mask_folder = folder / IMAGE_FOLDER, folder / MASK_FOLDER
    images = list_images(image_folder)
    records = []
    image_of_stem: dict[str, Path] = {}
    for image_path in images:
        mask_path = mask_folder / (image_path.stem + MASK_SUFFIX)
        if image_path.stem in image_of_stem:
            log.skip(
                image_path, "", "duplicate image name",
                f"{image_of_stem[image_path.stem].name} and {image_path.name} share the mask {mask_path.name}",
            )
            continue
        image_of_stem[image_path.stem] = image_path
        record = _read_pair(image_path, mask_path, split, root, log, verify_images)
        if record is not None:
            records.append(record)
    for mask_path in list_images(mask_folder):
        if mask_path.stem not in image_of_stem:
            log.skip(mask_path, "", "mask without image", f"no image named {mask_path.stem}.* in {image_folder}")
    return records


def _read_pair(
    image_path: Path, mask_path: Path, split: str, root: Path, log: IssueLog, verify_images: bool
) -> _MaskRecord | None:
    try:
        width, height = image_size(image_path, verify=verify_images)
    except DataError as exc:
        log.skip(image_path, "", "unreadable image", str(exc).split(": ", 1)[-1])
        return None
    if not mask_path.is_file():
        detail = f"image {image_path.name} has no mask; write an all-zero mask for a background image"
        log.skip(mask_path, "", "missing mask", detail)
        return None
    try:
        decoded, mode = _decode_mask(mask_path)
    except DataError as exc:
        log.skip(mask_path, "", "unreadable mask", str(exc).split(": ", 1)[-1])
        return None
    try:
        values = _mask_values(decoded, mode, mask_path)
    except DataError as exc:
        log.skip(mask_path, "", "not a single-channel mask", str(exc).split(": ", 1)[-1])
        return None
    if values.shape != (height, width):
        log.skip(
            mask_path, "", "mask size mismatch",
            f"mask is {values.shape[1]}x{values.shape[0]}, image {image_path.name} is {width}x{height}",
        )
        return None
    present = [int(v) for v in np.unique(values) if v != 0]
    parts = {}
    for value in present:
        class_mask = values == value
        box = mask_to_box(class_mask)
        assert box is not None  # the value is present
        parts[value] = (mask_to_rle(class_mask), float_box(box))
    return _MaskRecord(
        image_path=image_path, mask_path=mask_path, image_id=relative_id(image_path, root), split=split,
        width=width, height=height, parts=parts,
    )


def _annotations(
    record: _MaskRecord, declared: dict[int, str], class_of: dict[int, str], log: IssueLog
) -> list[Annotation] | None:
    """One annotation per class present, or None (logged) if the mask's values do not fit the classes."""
    values = sorted(record.parts)
    if len(declared) == 1:
        # One class: the mask is binary whichever foreground value it uses (1, 255, or the declared one).
        (class_value,) = declared
        if len(values) > 1 or (values and values[0] not in (1, 255, class_value)):
            log.skip(
                record.mask_path, "", "not a binary mask",
                f"values {[0, *values]}, expected 0 and one of 1, 255 for the one class {declared[class_value]!r}",
            )
            return None
        value_of = {v: class_value for v in values}
    else:
        unknown = [v for v in values if v not in declared]
        if unknown:
            log.skip(
                record.mask_path, "", "class value out of range",
                f"values {unknown} have no class; classes are {dict(sorted(declared.items()))}",
            )
            return None
        value_of = {v: v for v in values}
    return [
        Annotation(
            class_name=class_of[value_of[v]], box=record.parts[v][1], rle=record.parts[v][0],
            category=declared[value_of[v]], source_id=str(v),
        )
        for v in values
    ]


def _log_folders_without_masks(root: Path, log: IssueLog) -> None:
    """Count split folders with images but no masks, rather than dropping them unseen."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / IMAGE_FOLDER).is_dir() and not (folder / MASK_FOLDER).is_dir():
            detail = f"{len(list_images(folder / IMAGE_FOLDER))} image(s) in {folder / IMAGE_FOLDER} not loaded"
            log.skip(folder / MASK_FOLDER, "", "missing masks folder", detail)


def _has_images_and_masks(folder: Path) -> bool:
    return (folder / IMAGE_FOLDER).is_dir() and (folder / MASK_FOLDER).is_dir()

