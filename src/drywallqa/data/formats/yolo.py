"""YOLO txt exports (Roboflow "YOLOv5/v8" and Ultralytics layouts), boxes and polygons.

Layouts (both described by a ``data.yaml`` or ``data.yml``)::

    Roboflow                              Ultralytics
    <dataset>/data.yaml                   <dataset>/data.yaml
    <dataset>/<split>/images/<img>        <dataset>/images/<split>/<img>
    <dataset>/<split>/labels/<stem>.txt   <dataset>/labels/<split>/<stem>.txt

``data.yaml`` holds ``names`` (a list, or an ``{id: name}`` mapping), optionally ``nc`` (the
number of classes) and ``path`` (the dataset root), and one entry per split (``train``, ``val``,
``valid``, ``test``) naming an image folder or a list of them. A label file sits at the image's
path with its last ``images`` folder replaced by ``labels`` and the suffix by ``.txt``.

Each line of a label file is one object, every coordinate normalised to ``[0, 1]`` by the image
width (x) or height (y)::

    <class id> <cx> <cy> <w> <h>               # box: centre and size
    <class id> <x1> <y1> <x2> <y2> <x3> <y3> ... # polygon: >= 3 vertices

A missing or empty label file marks a background image. An image one of whose label lines is
skipped is left out whole (and counted), never kept with fewer objects than it has.

Every folder and file the export names lies in the dataset's folder (the one holding
``data.yaml``; :mod:`drywallqa.paths`): a ``path:`` naming an existing folder outside it is an
error (one that does not exist, the exporting machine's, is ignored), a split entry leading out of
it is skipped with a warning (an error under ``strict``), and label files are looked up only
below it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path, PurePath

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample, canonical_split
from drywallqa.data.groups import source_group
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import DataError, IssueLog
from drywallqa.files import image_size, list_images, relative_id
from drywallqa.paths import is_inside
from drywallqa.yamlio import read_yaml

YAML_FILES = ("data.yaml", "data.yml")
SPLIT_KEYS = ("train", "val", "valid", "validation", "test")


def find_yolo_yaml(path: str | os.PathLike) -> Path:
    """The dataset description: ``path`` itself, or ``data.yaml`` / ``data.yml`` in the folder."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    for file_name in YAML_FILES:
        if (path / file_name).is_file():
            return path / file_name
    raise DataError(f"{path}: no {' or '.join(YAML_FILES)} in it (expected a YOLO export with data.yaml at its root)")


def load_yolo(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    prompt_config: PromptConfig | None = None,
    strict: bool = False,
    quiet: bool = False,
    verify_images: bool = True,
    issues: IssueLog | None = None,
) -> AnnotatedDataset:
    """Load a YOLO txt export (boxes and/or polygons) into an :class:`AnnotatedDataset`.

    Normalised label coordinates are converted to pixels with the real size of each image file.
    Boxes become box-only annotations ``(x1, y1, x2, y2)``; polygons keep their ``(N, 2)`` pixel
    ``(x, y)`` vertices as written and get their bounds as box. Boxes are clipped to the image.

    Args:
        path: Dataset root holding ``data.yaml`` (or ``data.yml``), or that file itself.
        name: Dataset name; defaults to the name of the folder holding ``data.yaml``.
        prompt_config: Maps class names to prompt classes; the built-in config by default.
        strict: Raise :class:`DataError` at the first bad entry instead of skipping it.
        quiet: Do not print a warning line per skipped entry (they are still counted).
        verify_images: Decode every image to catch unreadable and truncated files.
        issues: Log to add skipped entries to (a new one by default).

    Returns:
        The dataset. Skipped label lines, images and split folders are in ``dataset.issues``.

    Raises:
        DataError: If ``data.yaml`` is missing, not YAML, has no valid ``names``, names no split,
            or none of its split folders exists; or in strict mode at the first bad entry.
    """
    yaml_file = find_yolo_yaml(path)
    root = yaml_file.parent
    name = name or root.resolve().name
    prompt_config = prompt_config or PromptConfig.default()
    log = issues if issues is not None else IssueLog(strict=strict, quiet=quiet)

    data = _read_data_yaml(yaml_file)
    names = _parse_names(data, yaml_file)
    class_of = {cid: prompt_config.resolve(category).name for cid, category in names.items()}
    split_folders = _resolve_split_folders(data, yaml_file, log)

    samples: list[Sample] = []
    for split, folder in split_folders:
        samples.extend(_load_split(folder, split, root, name, names, class_of, log, verify_images))
    log.report_hidden()
    return AnnotatedDataset(name, samples, tuple(sorted(set(class_of.values()))), root, log, "yolo")


def label_path(image_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The label file of an image: its last ``images`` folder replaced by ``labels``, suffix ``.txt``.

    An image outside any ``images`` folder has its label file next to it (as Ultralytics does).
    With ``root`` (the dataset's folder), only folders below it count, so a dataset kept in a
    folder named ``images`` never reads labels from outside itself.

    Example:
        >>> label_path("ds/train/images/a.jpg").as_posix()
        'ds/train/labels/a.txt'
        >>> label_path("ds/images/val/b.png").as_posix()
        'ds/labels/val/b.txt'
    """
    parts = list(Path(image_path).parts)
    first = len(Path(root).parts) if root is not None and Path(root) in Path(image_path).parents else 0
    for i in range(len(parts) - 2, first - 1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


# -- data.yaml -----------------------------------------------------------------------------------
def read_yolo_names(file: str | os.PathLike) -> dict[int, str]:
    """``{class id: class name}`` from a ``data.yaml``'s ``names`` (checked against ``nc``).

    Raises:
        DataError: If the file is not YAML or its ``names`` are missing or invalid.
    """
    file = Path(file)
    return _parse_names(_read_data_yaml(file), file)


def _read_data_yaml(file: Path) -> dict:
    data = read_yaml(file, DataError)
    if not isinstance(data, dict):
        raise DataError(
            f"{file}: not a YOLO data.yaml (top level is {type(data).__name__}, expected a mapping with "
            "'names' and split keys)"
        )
    return data


def _parse_names(data: dict, file: Path) -> dict[int, str]:
    """``{class id: class name}`` from ``names`` (list or mapping), checked against ``nc``."""
    raw = data.get("names")
    if isinstance(raw, list):
        names = {i: str(n) for i, n in enumerate(raw)}
    elif isinstance(raw, dict):
        names = {}
        for key, value in raw.items():
            cid = _as_class_id(key)
            if cid is None:
                raise DataError(f"{file}: key 'names': {key!r} is not a class id (expected {{0: name, 1: name, ...}})")
            names[cid] = str(value)
    elif raw is None:
        raise DataError(f"{file}: missing key 'names' (a list of class names, or {{id: name}})")
    else:
        raise DataError(f"{file}: key 'names' must be a list or an {{id: name}} mapping, got {type(raw).__name__}")
    if not names:
        raise DataError(f"{file}: key 'names' is empty (list at least one class)")
    if any(not n.strip() for n in names.values()):
        raise DataError(f"{file}: key 'names' has an empty class name: {sorted(names.items())}")
    nc = data.get("nc")
    if nc is not None:
        if _as_class_id(nc) is None:
            raise DataError(f"{file}: key 'nc' must be the number of classes, got {nc!r}")
        if int(nc) != len(names) or max(names) >= int(nc):
            raise DataError(
                f"{file}: key 'nc' is {nc} but 'names' has {len(names)} class(es) with ids {sorted(names)}; "
                "make them agree"
            )
    return names


def _as_class_id(value: object) -> int | None:
    """A non-negative integer class id from an int, an integral float or a digit string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        try:
            return _as_class_id(float(value)) if value.strip() else None
        except ValueError:
            return None
    return None


def _resolve_split_folders(data: dict, file: Path, log: IssueLog) -> list[tuple[str, Path]]:
    """``[(canonical split, image folder)]`` for the split keys of ``data.yaml``.

    A split folder that does not exist is skipped (and counted) when another split resolves, as a
    Roboflow export may list a ``test`` split it did not include; if none resolves, or in strict
    mode, it raises.
    """
    bases = _base_folders(data, file)
    root = file.parent
    entries = []
    for key in SPLIT_KEYS:
        value = data.get(key)
        if value in (None, "", []):
            continue  # Ultralytics writes "test:" with no value for an absent split.
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise DataError(f"{file}: key {key!r} must be a folder path or a list of them, got {value!r}")
        entries.extend((key, v) for v in values)
    if not entries:
        raise DataError(
            f"{file}: no split key (expected at least one of {', '.join(SPLIT_KEYS)} naming an image folder)"
        )

    found: list[tuple[str, Path]] = []
    missing: list[tuple[str, str, list[Path]]] = []
    seen: set[Path] = set()
    for key, value in entries:
        if any(ord(c) < 32 for c in value):
            raise DataError(f"{file}: key {key!r}: {value!r:.80} holds a NUL or control character")
        tried = _candidate_folders(value, bases)
        inside = [c for c in tried if is_inside(c, root)]
        folder = next((c for c in inside if _is_dir(c)), None)
        if folder is None:
            outside = [c for c in tried if c not in inside and _is_dir(c)]
            if outside:
                detail = f"{value!r} leads to {outside[0]}, outside the dataset folder {root}"
                if not log.strict:
                    log.skip(file, f"key {key!r}", "split folder outside the dataset", detail)
                    continue
                raise DataError(f"{file}: key {key!r}: split folder outside the dataset ({detail})")
            missing.append((key, value, inside or tried))
            continue
        if folder.resolve() in seen:
            continue  # "val" and "valid" naming the same folder
        seen.add(folder.resolve())
        found.append((canonical_split(key), folder))
    for key, value, tried in missing:
        detail = f"{value!r} is not a folder; tried {', '.join(str(t) for t in tried)}"
        if any(_is_file(t) for t in tried):
            detail += "; image list files are not supported, point the key at an image folder"
        if not found or log.strict:
            raise DataError(f"{file}: key {key!r}: split folder not found ({detail})")
        log.skip(file, f"key {key!r}", "missing split folder", detail)
    return found


def _base_folders(data: dict, file: Path) -> list[Path]:
    """Folders split paths may be relative to: the ``path`` key if it exists, then the yaml's folder.

    Raises:
        DataError: If ``path`` names an existing folder outside the yaml's folder (the dataset's).
    """
    bases = []
    declared = data.get("path")
    if isinstance(declared, str) and declared.strip():
        if any(ord(c) < 32 for c in declared):
            raise DataError(f"{file}: key 'path': {declared!r:.80} holds a NUL or control character")
        base = Path(declared)
        base = base if base.is_absolute() else file.parent / base
        # A ``path`` from the exporting machine is common; fall back to the yaml's folder silently.
        if _is_dir(base):
            if not is_inside(base, file.parent):
                raise DataError(
                    f"{file}: key 'path': {declared!r:.80} is outside the dataset folder {file.parent}; a dataset's "
                    "files must lie in the folder holding its data.yaml (remove the key, or move data.yaml there)"
                )
            bases.append(base)
    bases.append(file.parent)
    return bases


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for names no file system accepts (over-long, NUL)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _candidate_folders(value: str, bases: list[Path]) -> list[Path]:
    """Where a split path may point: as written, then without its leading ``../`` parts.

    Roboflow writes ``../train/images``, relative to a training script's folder one level below
    the dataset, while the yaml sits in the dataset root; stripping ``..`` resolves it there.
    """
    written = PurePath(value)
    if written.is_absolute():
        return [Path(written)]
    parts = list(written.parts)
    while parts and parts[0] in ("..", "."):
        parts.pop(0)
    stripped = PurePath(*parts)
    candidates = []
    for base in bases:
        for rel in (written, stripped):
            candidate = base / rel
            if rel.parts and candidate not in candidates:
                candidates.append(candidate)
    return candidates


# -- label files ---------------------------------------------------------------------------------
def _load_split(
    folder: Path,
    split: str,
    root: Path,
    dataset: str,
    names: dict[int, str],
    class_of: dict[int, str],
    log: IssueLog,
    verify_images: bool,
) -> list[Sample]:
    samples = []
    images = list_images(folder)
    for image_path in images:
        try:
            width, height = image_size(image_path, verify=verify_images)
        except DataError as exc:
            log.skip(image_path, "", "unreadable image", str(exc).split(": ", 1)[-1])
            continue
        labels = label_path(image_path, root)
        annotations = _parse_label_file(labels, width, height, names, class_of, log)
        if annotations is None:
            continue
        lost = sum(1 for a in annotations if a is None)
        if lost:
            # Kept without that object, the image would teach (or score) it as background.
            log.skip(image_path, "", "image with a skipped annotation",
                     f"{lost} line(s) of {labels.name} could not be used; the image is left out, not kept without them")
            continue
        samples.append(
            Sample(
                image_path=image_path, width=width, height=height, split=split, dataset=dataset,
                group=source_group(image_path.name), annotations=tuple(annotations),
                image_id=relative_id(image_path, root),
            )
        )
    _log_orphan_labels(folder, images, root, log)
    return samples


def _log_orphan_labels(folder: Path, images: list[Path], root: Path, log: IssueLog) -> None:
    """Count label files without an image: a sign of an export that lost images."""
    label_folder = label_path(folder / "x.jpg", root).parent
    if label_folder == folder or not label_folder.is_dir():
        return
    stems = {p.stem for p in images}
    for labels in sorted(label_folder.glob("*.txt")):
        if labels.stem not in stems:
            log.skip(labels, "", "label file without image", f"no image named {labels.stem}.* in {folder}")


def _parse_label_file(
    file: Path, width: int, height: int, names: dict[int, str], class_of: dict[int, str], log: IssueLog
) -> list[Annotation | None] | None:
    """The annotations of one image, None for each line skipped; ``[]`` for a missing file
    (background), None if unreadable."""
    if not file.exists():
        return []
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        # Its objects are unknown, so calling the image background would teach false negatives.
        log.skip(file, "", "unreadable label file", str(exc))
        return None
    annotations = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            annotations.append(_parse_label_line(line, line_no, file, width, height, names, class_of, log))
    return annotations


def _parse_label_line(
    line: str,
    line_no: int,
    file: Path,
    width: int,
    height: int,
    names: dict[int, str],
    class_of: dict[int, str],
    log: IssueLog,
) -> Annotation | None:
    where = f"line {line_no}"
    tokens = line.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        log.skip(file, where, "not a number", f"{bad!r} in {line.strip()!r}")
        return None
    if not all(math.isfinite(v) for v in values):
        log.skip(file, where, "not a number", f"non-finite value in {line.strip()!r}")
        return None
    cid = _as_class_id(values[0])
    if cid is None:
        log.skip(file, where, "invalid class id", f"{tokens[0]!r} is not a non-negative integer")
        return None
    if cid not in names:
        log.skip(file, where, "unknown class id", f"class {cid}, data.yaml names ids {sorted(names)}")
        return None
    coords = np.array(values[1:], dtype=np.float64)
    if len(coords) % 2:
        log.skip(file, where, "odd number of coordinates", f"{len(coords)} value(s) after the class id")
        return None
    common = {"class_name": class_of[cid], "category": names[cid], "source_id": str(line_no)}
    if len(coords) == 4:
        box = _box_to_pixels(coords, width, height, file, where, log)
        return None if box is None else Annotation(box=box, **common)
    if len(coords) < 6:
        log.skip(file, where, "polygon with fewer than 3 points", f"{len(coords) // 2} point(s)")
        return None
    converted = _polygon_to_pixels(coords, width, height, file, where, log)
    if converted is None:
        return None
    polygon, box = converted
    return Annotation(box=box, polygons=(polygon.astype(np.float32),), **common)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _to_pixels(values: np.ndarray) -> np.ndarray:
    # Normalised coordinates times the image size land a hair off whole pixels (0.29 * 100 =
    # 28.999999999999996), and polygon rasterisation truncates vertices, so that hair would move
    # an outline by a full pixel. Rounding to 1e-6 px removes it without moving anything real.
    return np.round(values, 6)


def _box_to_pixels(
    coords: np.ndarray, width: int, height: int, file: Path, where: str, log: IssueLog
) -> tuple[float, float, float, float] | None:
    """``(cx, cy, w, h)`` normalised to ``(x1, y1, x2, y2)`` pixels clipped to the image, or None."""
    cx, cy, w, h = coords
    if w <= 0 or h <= 0:
        log.skip(file, where, "zero-area box", f"width {w:g}, height {h:g} (normalised)")
        return None
    x1, x2 = _to_pixels(np.array([cx - w / 2, cx + w / 2]) * width)
    y1, y2 = _to_pixels(np.array([cy - h / 2, cy + h / 2]) * height)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        log.skip(
            file, where, "box outside the image",
            f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] px, image {width}x{height}",
        )
        return None
    return (float(cx1), float(cy1), float(cx2), float(cy2))


def _polygon_to_pixels(
    coords: np.ndarray, width: int, height: int, file: Path, where: str, log: IssueLog
) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
    """Normalised ``x1 y1 x2 y2 ...`` to an ``(N, 2)`` pixel polygon and its bounds clipped to the image.

    The vertices are not clipped: moving a vertex onto the border would change the shape inside
    the image too, while rasterising clips exactly (as for COCO polygons).
    """
    points = _to_pixels(coords.reshape(-1, 2) * np.array([width, height], dtype=np.float64))
    (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        log.skip(file, where, "zero-area polygon", f"bounds [{x1:g}, {y1:g}, {x2:g}, {y2:g}] px")
        return None
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        log.skip(
            file, where, "polygon outside the image",
            f"bounds [{x1:g}, {y1:g}, {x2:g}, {y2:g}] px, image {width}x{height}",
        )
        return None
    return points, (float(cx1), float(cy1), float(cx2), float(cy2))
