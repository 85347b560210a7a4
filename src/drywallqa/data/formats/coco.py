"""Roboflow / COCO detection and segmentation exports.

Layout (what Roboflow writes)::

    <dataset>/<split>/_annotations.coco.json   # images, annotations, categories
    <dataset>/<split>/<image files>

Segmentations may be polygon lists, uncompressed RLE (``counts`` a list), compressed RLE
(``counts`` a string), or empty (box-only annotation). Roboflow adds a root category named after
the project (supercategory ``"none"``) that no annotation uses; it is ignored.

A ``file_name`` is a relative path inside the annotation file's folder (:mod:`drywallqa.paths`):
an absolute one, one with a drive letter, a backslash or a ``..`` part is skipped with a warning.
The one exception is a pseudo-mask folder written by ``drywallqa masks``, whose file names lead
back to the images of its source dataset: they may climb out only into the dataset its
:data:`PSEUDO_MANIFEST` names, or into the folders the caller names (``image_roots``: a training
set built with pseudo-masks names its datasets). An image whose annotation is skipped is left out whole (and counted), never
kept with fewer objects than it has.
"""

from __future__ import annotations

import math
import os
import reprlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample, canonical_split
from drywallqa.data.groups import source_group
from drywallqa.data.masks import float_box, mask_to_box, mask_to_rle, rle_to_mask
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import SHOWN_PER_REASON, DataError, IssueLog
from drywallqa.files import atomic_write_json, image_size, read_json
from drywallqa.paths import UnsafePathError, check_data_path, is_inside

ANNOTATION_FILE = "_annotations.coco.json"
# Annotation key marking a shape generated from its box (value: the method's name), so that
# evaluation never scores against pseudo-masks.
PSEUDO_KEY = "drywallqa_pseudo"
SPLIT_FOLDERS = {"train", "valid", "val", "validation", "test"}
#: Manifest ``drywallqa masks`` writes at the root of a pseudo-mask folder; its ``dataset`` names
#: the dataset whose images the folder's file names lead back to.
PSEUDO_MANIFEST = "pseudomasks.json"
PSEUDO_TOOL = "drywallqa pseudomask"
# Short reprs of bad entries in warnings: a hostile entry may be megabytes long.
_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60
_BRIEF.maxlist = _BRIEF.maxdict = 4


def find_coco_files(path: str | os.PathLike, annotation_file: str = ANNOTATION_FILE) -> list[Path]:
    """Annotation files under ``path``: the file itself, ``path/<file>``, or ``path/<split>/<file>``."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    direct = path / annotation_file
    if direct.is_file():
        return [direct]
    found = sorted(p / annotation_file for p in path.iterdir() if (p / annotation_file).is_file())
    if not found:
        raise DataError(f"{path}: no {annotation_file} in it or in its split folders (expected <split>/{annotation_file})")
    return found


def load_coco(
    path: str | os.PathLike,
    *,
    name: str | None = None,
    annotation_file: str = ANNOTATION_FILE,
    prompt_config: PromptConfig | None = None,
    strict: bool = False,
    quiet: bool = False,
    verify_images: bool = True,
    issues: IssueLog | None = None,
    image_roots: Sequence[str | os.PathLike] = (),
) -> AnnotatedDataset:
    """Load a COCO / Roboflow export into an :class:`AnnotatedDataset`.

    Args:
        path: Dataset root holding split folders, one split folder, or one annotation json file.
        name: Dataset name; defaults to the root folder's name.
        annotation_file: Name of the json in each split folder.
        prompt_config: Maps category names to prompt classes; the built-in config by default.
        strict: Raise :class:`DataError` at the first bad entry instead of skipping it.
        quiet: Do not print a warning line per skipped entry (they are still counted).
        verify_images: Decode every image to catch unreadable and truncated files.
        issues: Log to add skipped entries to (a new one by default).
        image_roots: Folders besides the annotation file's own that ``file_name`` entries may
            lead into with ``..`` (the images of a pseudo-mask dataset's source); see the module
            docstring.

    Returns:
        The dataset. Skipped entries are in ``dataset.issues``.

    Raises:
        DataError: If no annotation file is found or none can be read, or in strict mode.
    """
    files = find_coco_files(path, annotation_file)
    path = Path(path)
    root = path if path.is_dir() and not (path / annotation_file).is_file() else files[0].parent
    if root == files[0].parent and root.name.lower() in SPLIT_FOLDERS:
        # One split folder (or a json in one): the dataset is the folder above it.
        root = root.parent
    name = name or root.resolve().name
    prompt_config = prompt_config or PromptConfig.default()
    log = issues if issues is not None else IssueLog(strict=strict, quiet=quiet)
    source = pseudo_mask_source(root)
    roots = [Path(r) for r in image_roots] + ([source] if source is not None else [])
    samples: list[Sample] = []
    class_names: set[str] = set()
    for file in files:
        split = canonical_split(file.parent.name) if file.parent != root else ""
        # A broken annotation file would drop its whole split (a training run without its train
        # split still "succeeds"): that is an error, never a skip.
        data = read_coco_file(file)
        file_samples, file_classes = _parse_coco(data, file, split, name, prompt_config, log, verify_images, roots)
        if data["images"] and not file_samples:
            raise DataError(
                f"{file}: none of its {len(data['images'])} image(s) could be used, so split {split or file.parent.name!r} "
                f"would be empty ({_skipped_reasons(log, file)}); fix the file or remove the split folder"
            )
        samples.extend(file_samples)
        class_names |= file_classes
    log.report_hidden()
    return AnnotatedDataset(name, samples, tuple(sorted(class_names)), root, log, "coco")


def _skipped_reasons(log: IssueLog, file: Path) -> str:
    reasons = Counter(log.counts(file))
    return ", ".join(f"{n} {reason}" for reason, n in reasons.most_common()) or "nothing usable"


def pseudo_mask_source(root: Path) -> Path | None:
    """The dataset a pseudo-mask folder's file names lead back to, or None for any other folder.

    ``root`` must hold a :data:`PSEUDO_MANIFEST` written by ``drywallqa masks`` whose ``dataset``
    is a dataset folder (a relative one is taken from the current folder, as older versions
    wrote it); otherwise the folder is an ordinary dataset and its file names stay inside it.
    """
    from drywallqa.data.formats import detect_format

    manifest = root / PSEUDO_MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = read_json(manifest)
    except DataError:
        return None
    dataset = data.get("dataset") if isinstance(data, dict) and data.get("tool") == PSEUDO_TOOL else None
    if not isinstance(dataset, str) or not dataset.strip() or "\x00" in dataset:
        return None
    try:
        detect_format(dataset)
    except (DataError, OSError, ValueError):
        return None
    return Path(dataset)


def image_file(name: object, folder: Path, roots: Sequence[Path] = ()) -> Path:
    """The image a ``file_name`` names: inside ``folder``, or one climbing out with ``..`` inside
    one of ``roots`` (a pseudo-mask folder's source datasets, see :func:`pseudo_mask_source`).

    Raises:
        UnsafePathError: If the name breaks the rule of :mod:`drywallqa.paths`.
    """
    if not roots or not (isinstance(name, str) and ".." in name.split("/")):
        return folder / check_data_path(name)
    check_data_path(name.replace("..", "_"))  # every other part of the rule still holds
    path = folder / name
    if not any(is_inside(path, root) for root in roots):
        shown = ", ".join(repr(str(root)) for root in roots)
        raise UnsafePathError(f"{name!r:.80} leads out of its folder, and not into the source dataset ({shown})")
    return path


def read_coco_file(file: str | os.PathLike) -> dict:
    """A COCO annotation file's contents, checked to hold the ``images``, ``annotations`` and ``categories`` lists.

    Raises:
        DataError: If the file cannot be read, is not JSON or lacks one of the lists.
    """
    data = read_json(file)
    _check_coco_layout(data, Path(file))
    return data


def category_classes(
    data: dict, file: Path, prompt_config: PromptConfig, log: IssueLog
) -> tuple[dict[str, dict], dict[str, str]]:
    """The usable categories of a COCO file and the prompt class of each, both keyed by ``str(id)``.

    Categories without id or name are skipped (logged); Roboflow's project-level root category
    gets no class.
    """
    categories = {}
    for index, cat in _objects(data, "categories", file, log):
        if "id" not in cat or not isinstance(cat.get("name"), str):
            log.skip(file, f"categories[{index}] {_BRIEF.repr(cat)}", "category without id or name")
            continue
        categories[str(cat["id"])] = cat
    roots = _roboflow_root_categories(categories.values())
    class_of = {
        cid: prompt_config.resolve(str(cat["name"]), cat.get("supercategory")).name
        for cid, cat in categories.items()
        if cid not in roots
    }
    return categories, class_of


def _check_coco_layout(data: object, file: Path) -> None:
    if not isinstance(data, dict):
        raise DataError(f"{file}: not a COCO annotation file (top level is {type(data).__name__}, expected an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{file}: not a COCO annotation file (missing list {key!r})")


def _parse_coco(
    data: dict,
    file: Path,
    split: str,
    dataset: str,
    prompt_config: PromptConfig,
    log: IssueLog,
    verify_images: bool,
    roots: Sequence[Path] = (),
) -> tuple[list[Sample], set[str]]:
    folder = file.parent
    categories, class_of = category_classes(data, file, prompt_config, log)

    images: dict[str, dict] = {}
    id_counts = Counter(str(e.get("id")) for e in data["images"] if isinstance(e, dict) and "id" in e)
    for index, entry in _objects(data, "images", file, log):
        image_id = str(entry.get("id")) if "id" in entry else None
        if image_id is None or "file_name" not in entry:
            log.skip(file, f"images[{index}] {_BRIEF.repr(entry)}", "image entry without id or file_name")
            continue
        shown = entry["file_name"] if isinstance(entry["file_name"], str) and entry["file_name"].isprintable() \
            and len(entry["file_name"]) <= 200 else _BRIEF.repr(entry["file_name"])
        where = f"image id={image_id} ({shown})"
        if id_counts[image_id] > 1:
            # Its annotations could belong to either entry: neither is used.
            log.skip(file, where, "duplicate image id", f"{id_counts[image_id]} image entries share id {image_id}")
            continue
        declared = (entry.get("width"), entry.get("height"))
        if not all(v is None or _is_size(v) for v in declared):
            log.skip(file, where, "invalid image size", f"width={declared[0]!r}, height={declared[1]!r}; expected positive integers")
            continue
        try:
            image_path = image_file(entry["file_name"], folder, roots)
        except UnsafePathError as exc:
            log.skip(file, f"image id={image_id} file_name", "unsafe file name", str(exc))
            continue
        try:
            width, height = image_size(image_path, verify=verify_images)
        except DataError as exc:
            reason = "missing image" if "not found" in str(exc) else "unreadable image"
            log.skip(file, where, reason, str(exc).split(": ", 1)[-1])
            continue
        if declared[0] is not None and declared[1] is not None and (int(declared[0]), int(declared[1])) != (width, height):
            log.skip(file, where, "image size mismatch", f"json says {declared[0]}x{declared[1]}, file is {width}x{height}")
            continue
        images[image_id] = {"path": image_path, "width": width, "height": height, "annotations": [], "where": where,
                            "lost": 0}

    listed = {str(e.get("id")) for e in data["images"] if isinstance(e, dict)}
    for _, entry in _objects(data, "annotations", file, log):
        ann_id = entry.get("id")
        where = f"annotation id={ann_id if isinstance(ann_id, (int, str)) and len(str(ann_id)) <= 40 else _BRIEF.repr(ann_id)}"
        image = images.get(str(entry.get("image_id")))
        if image is None:
            if str(entry.get("image_id")) not in listed:  # else: an annotation of a skipped image
                log.skip(file, where, "unknown image id", f"image_id={_BRIEF.repr(entry.get('image_id'))}")
            continue
        cid = str(entry.get("category_id"))
        if cid not in class_of:
            log.skip(file, where, "unknown category id", f"category_id={_BRIEF.repr(entry.get('category_id'))}")
            image["lost"] += 1
            continue
        ann = _parse_annotation(entry, class_of[cid], str(categories[cid]["name"]), image, file, where, log)
        if ann is not None:
            image["annotations"].append(ann)
        else:
            image["lost"] += 1

    # An image that lost an annotation would teach (or score) its object as background: leave it out.
    for image_id in [i for i, img in images.items() if img["lost"]]:
        image = images.pop(image_id)
        log.skip(file, image["where"], "image with a skipped annotation",
                 f"{image['lost']} of its annotations could not be used; the image is left out, not kept without them")

    samples = [
        Sample(
            image_path=img["path"], width=img["width"], height=img["height"], split=split, dataset=dataset,
            group=source_group(img["path"].name), annotations=tuple(img["annotations"]), image_id=image_id,
        )
        for image_id, img in images.items()
    ]
    return samples, set(class_of.values())


def _objects(data: dict, key: str, file: Path, log: IssueLog) -> Iterator[tuple[int, dict]]:
    """``(position, entry)`` of the entries of ``data[key]`` that are JSON objects.

    The others are skipped: the first few each with a warning, the rest counted at once, so a
    list of a hundred million zeros costs seconds and a few lines, not gigabytes of warnings.
    """
    others = 0
    for index, entry in enumerate(data[key]):
        if type(entry) is dict:
            yield index, entry
            continue
        others += 1
        if others <= SHOWN_PER_REASON or log.strict:
            log.skip(file, f"{key}[{index}]", f"{key} entry is not an object", f"got {_BRIEF.repr(entry)}")
    if others > SHOWN_PER_REASON:
        log.skip_many(file, f"{key} entry is not an object", others - SHOWN_PER_REASON)


def _roboflow_root_categories(categories: Iterable[dict]) -> set[str]:
    """Ids of Roboflow's project-level root categories: supercategory "none" and named as the
    supercategory of another category."""
    categories = list(categories)
    parents = {str(c.get("supercategory")) for c in categories}
    return {
        str(c["id"])
        for c in categories
        if str(c.get("supercategory", "")).lower() == "none" and str(c["name"]) in parents and len(categories) > 1
    }


def _parse_annotation(
    entry: dict, class_name: str, category: str, image: dict, file: Path, where: str, log: IssueLog
) -> Annotation | None:
    width, height = image["width"], image["height"]
    segmentation = entry.get("segmentation") or []
    polygons: list[np.ndarray] = []
    rle = None
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if "counts" not in segmentation or not _is_numbers(size) or [int(v) for v in size] != [height, width]:
            log.skip(file, where, "invalid RLE", f"size {size!r} does not match image {height}x{width}")
            return None
        try:
            rle_to_mask(segmentation, height, width)  # catch broken counts now, not mid-training
        except (ValueError, TypeError, KeyError) as exc:
            log.skip(file, where, "invalid RLE", str(exc))
            return None
        rle = segmentation
    elif isinstance(segmentation, list):
        for part in segmentation:
            coords = np.asarray(part, dtype=np.float64).reshape(-1) if _is_numbers(part) else None
            if coords is None or len(coords) % 2 or not np.isfinite(coords).all():
                log.skip(file, where, "invalid polygon", "expected a flat list of x, y numbers")
                return None
            if len(coords) < 6:
                log.skip(file, where, "polygon with fewer than 3 points", f"{len(coords) // 2} point(s)")
                return None
            if _far_outside(coords[0::2], coords[1::2], width, height):
                log.skip(file, where, "polygon far outside the image",
                         f"a vertex lies more than ten image sizes beyond it (image {width}x{height})")
                return None
            polygons.append(coords.reshape(-1, 2).astype(np.float32))
    else:
        log.skip(file, where, "invalid segmentation", f"expected a list or an RLE object, got {type(segmentation).__name__}")
        return None

    box = _parse_box(entry.get("bbox"))
    if entry.get("bbox") is not None and (box is None or _far_outside(box[0::2], box[1::2], width, height)):
        reason = "invalid box" if box is None else "box far outside the image"
        log.skip(file, where, reason, f"bbox={entry.get('bbox')!r:.80}, expected [x, y, width, height] on a {width}x{height} image")
        return None
    if box is None and polygons:
        pts = np.concatenate(polygons)
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()) + 1, float(pts[:, 1].max()) + 1)
    if box is None and rle is not None:
        tight = mask_to_box(rle_to_mask(rle, height, width))
        box = None if tight is None else float_box(tight)
    if box is None:
        log.skip(file, where, "invalid box", f"bbox={entry.get('bbox')!r}, expected [x, y, width, height]")
        return None
    x1, y1, x2, y2 = box
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        log.skip(file, where, "zero-area box", f"bbox={entry.get('bbox')!r}")
        return None
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
        log.skip(file, where, "box outside the image", f"bbox={entry.get('bbox')!r}, image {width}x{height}")
        return None
    return Annotation(
        class_name=class_name, box=(cx1, cy1, cx2, cy2), polygons=tuple(polygons), rle=rle,
        category=category, source_id=str(entry.get("id", "")), is_pseudo=bool(entry.get(PSEUDO_KEY)),
    )


def _is_numbers(value: object) -> TypeGuard[list[float]]:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _is_size(value: object) -> bool:
    """A positive whole number (``640`` or ``640.0``, not ``"wide"``, ``True`` or ``640.5``)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0 and float(value).is_integer())


def _far_outside(xs: Iterable[float], ys: Iterable[float], width: int, height: int) -> bool:
    """Any coordinate more than ten image sizes beyond its edges: a broken value (1e30), not an
    annotation tool's vertex a little outside the frame (those are kept, and boxes clipped)."""
    xs, ys = np.asarray(list(xs), dtype=np.float64), np.asarray(list(ys), dtype=np.float64)
    return bool((np.abs(xs - width / 2) > 10.5 * width).any() or (np.abs(ys - height / 2) > 10.5 * height).any())


def _parse_box(bbox: object) -> tuple[float, float, float, float] | None:
    if not _is_numbers(bbox) or len(bbox) != 4 or not all(math.isfinite(v) for v in bbox):
        return None
    x, y, w, h = (float(v) for v in bbox)
    return (x, y, x + w, y + h)


# -- writing -------------------------------------------------------------------------------------
def samples_to_coco(
    samples: Sequence[Sample],
    image_root: str | os.PathLike,
    masks: dict[int, dict[str, np.ndarray]] | None = None,
    class_names: Sequence[str] | None = None,
    description: str = "written by drywallqa",
    pseudo_method: str = "pseudo",
) -> dict:
    """Build a COCO dict for ``samples``, with file names relative to ``image_root``.

    Args:
        samples: Samples to write, in order; their index is the COCO image id.
        image_root: Folder the json will live in; ``file_name`` entries are relative to it.
        masks: Optional replacement shapes: ``{sample_index: {class_name: (H, W) bool}}``. When
            given for an image, each annotation of that class gets the part of the mask inside
            its box as compressed RLE (this is how pseudo-masks are written).
        class_names: Category order (ids start at 1, as Roboflow does); all classes by default.
        description: Goes into the ``info`` block.
        pseudo_method: Name recorded under ``drywallqa_pseudo`` in annotations whose shape comes
            from ``masks`` or that are marked ``is_pseudo`` (loaders mark them ``is_pseudo`` again).

    Returns:
        A JSON-ready COCO dict. Polygons are kept as polygons, RLE as compressed RLE, box-only
        annotations get ``segmentation: []``.
    """
    names = list(class_names or sorted({c for s in samples for c in s.classes}))
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for idx, sample in enumerate(samples):
        rel = os.path.relpath(sample.image_path, image_root)
        images.append({"id": idx, "file_name": rel, "width": sample.width, "height": sample.height})
        for ann in sample.annotations:
            x1, y1, x2, y2 = ann.box
            record = {
                "id": len(annotations), "image_id": idx, "category_id": cat_id[ann.class_name],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            }
            class_mask = (masks or {}).get(idx, {}).get(ann.class_name)
            if class_mask is not None:
                inside = np.zeros_like(class_mask)
                ya, yb, xa, xb = int(y1), int(math.ceil(y2)), int(x1), int(math.ceil(x2))
                inside[ya:yb, xa:xb] = class_mask[ya:yb, xa:xb]
                record["segmentation"] = mask_to_rle(inside)
                record["area"] = int(inside.sum())
                record[PSEUDO_KEY] = pseudo_method
            elif ann.rle is not None:
                record["segmentation"] = _compressed_rle(ann.rle, sample.height, sample.width)
            else:
                record["segmentation"] = [p.reshape(-1).tolist() for p in ann.polygons]
            if ann.is_pseudo and PSEUDO_KEY not in record:
                record[PSEUDO_KEY] = pseudo_method
            annotations.append(record)
    return {
        "info": {"description": description},
        "categories": [{"id": cat_id[n], "name": n, "supercategory": "none"} for n in names],
        "images": images,
        "annotations": annotations,
    }


def _compressed_rle(rle: dict, height: int, width: int) -> dict:
    """``rle`` as compressed RLE with string counts; one already so is kept as it is (decoding and
    encoding it again gives the same string, at a cost predict's COCO of thousands of masks feels)."""
    if isinstance(rle.get("counts"), str) and [int(v) for v in rle.get("size", ())] == [height, width]:
        return {"size": [height, width], "counts": rle["counts"]}
    return mask_to_rle(rle_to_mask(rle, height, width))


def write_coco(path: str | os.PathLike, coco: dict) -> Path:
    """Write a COCO dict atomically (temp file + rename)."""
    return atomic_write_json(path, coco)
