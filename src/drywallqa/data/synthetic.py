"""Built-in synthetic sample data: rendered drywall photos with exact masks (``drywallqa sample-data``).

:func:`generate_sample_data` writes two small datasets in the same Roboflow COCO layout as the real
exports, so every stage (loading, pseudo-masks, training, evaluation) can be tried and tested
without downloading anything::

    OUT/README.md                                   # what this is
    OUT/sample-data.json                            # manifest: parameters, written files, shared groups
    OUT/cracks/{train,valid,test}/_annotations.coco.json + JPEGs
    OUT/drywall-join/{train,valid}/_annotations.coco.json + JPEGs         # box-only, like the real export
    OUT/drywall-join/{train,valid}/_annotations.truth.coco.json           # true joint masks as RLE

Crack annotations are polygons traced from the drawn crack (a few as compressed or uncompressed
RLE, so every COCO segmentation kind occurs). Joint annotations are tight boxes only, exactly
like the real ``drywall-join`` export; the true joint masks go to a separate truth file with the
same image and annotation ids, so pseudo-masks made from the boxes can be scored against the
truth, which the real data cannot do.

Each source rendering is exported in one to three variants (identity, flips, 90° rotations, crops)
with Roboflow-style names ``<source>_jpg.rf.<32 hex>.jpg``, so variants share a source group (see
:func:`drywallqa.data.groups.source_group`). Cracks splits are group-clean; in drywall-join a few
groups have variants in both train and valid on purpose, as in the real export.

Example:
    >>> paths = generate_sample_data("sample-data", images=40, size=256)   # doctest: +SKIP
    >>> AnnotatedDataset.load(paths.cracks)                                # doctest: +SKIP
    AnnotatedDataset('cracks', 20 images, splits={...}, classes=['crack'])
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from drywallqa.data.formats.coco import ANNOTATION_FILE
from drywallqa.data.groups import split_groups
from drywallqa.data.masks import mask_to_box, mask_to_rle, polygons_to_mask
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import atomic_write_json, atomic_write_text, read_json, write_image

__all__ = [
    "CRACKS_DATASET", "JOINTS_DATASET", "MANIFEST_FILE", "TRUTH_ANNOTATION_FILE", "RenderedImage",
    "SampleDataPaths", "generate_sample_data", "read_manifest", "render_sample_image",
]

CRACKS_DATASET = "cracks"
JOINTS_DATASET = "drywall-join"
TRUTH_ANNOTATION_FILE = "_annotations.truth.coco.json"
MANIFEST_FILE = "sample-data.json"
GENERATOR = "drywallqa sample-data"
FORMAT_VERSION = 1

CRACK_SPLIT_FRACTIONS = {"train": 0.7, "valid": 0.2, "test": 0.1}
JOINT_SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.2}
MIN_IMAGES_PER_DATASET = 4
MIN_SIZE = 64

# Roboflow-like categories: id 0 is the project's root category (supercategory "none"), which
# the loader ignores; id 1 is the class every annotation uses.
CRACK_CATEGORIES = [
    {"id": 0, "name": "cracks", "supercategory": "none"},
    {"id": 1, "name": "crack", "supercategory": "cracks"},
]
JOINT_CATEGORIES = [
    {"id": 0, "name": "Drywall-Join", "supercategory": "none"},
    {"id": 1, "name": "drywall-join", "supercategory": "Drywall-Join"},
]
# A fixed date: a timestamp of "now" would make reruns differ byte for byte.
_DATE = "2025-01-01T00:00:00+00:00"
_INFO = {
    "year": "2025", "version": "1", "description": "Synthetic drywall sample data rendered by drywallqa",
    "contributor": "drywallqa", "url": "", "date_created": _DATE,
}
_LICENSES = [{"id": 1, "url": "https://www.apache.org/licenses/LICENSE-2.0", "name": "Apache-2.0"}]
_TRANSFORMS = ("hflip", "vflip", "rot90", "rot180", "rot270", "crop")

_README = """\
# drywallqa synthetic sample data

Rendered by `drywallqa sample-data` (seed {seed}, {images} images of {size}x{size} px); not real photos.
Same layout as the Roboflow COCO exports: `<dataset>/<split>/_annotations.coco.json` beside the JPEGs.

- `cracks/`: class `crack`, polygons traced from the drawn cracks (some as compressed or
  uncompressed RLE). Splits are grouped by source photo.
- `drywall-join/`: class `drywall-join` (prompt class `taping_area`), boxes only, like the real
  export. Half the walls show bare board seams before taping (like most real photos), half taped
  and mudded joints; a seam's true mask is the band its tape will cover.
  `_annotations.truth.coco.json` in each split holds the true joint masks as RLE with the
  same image and annotation ids, for scoring pseudo-masks made from the boxes. As in the real
  export, a few source photos have variants in both train and valid: {shared}.

Files are named `<source>_jpg.rf.<hash>.jpg`; files sharing `<source>` are variants (flip,
rotation, crop) of one rendering. `sample-data.json` lists every file written here, so a rerun
into this folder can replace them.
"""


@dataclass(frozen=True)
class SampleDataPaths:
    """Where :func:`generate_sample_data` wrote the two datasets, and what they hold.

    Attributes:
        root: The output folder.
        cracks: Root of the crack dataset (``train``/``valid``/``test`` split folders).
        drywall_join: Root of the joint dataset (``train``/``valid`` split folders).
        image_counts: Images per split: ``{"cracks": {"train": n, ...}, "drywall-join": {...}}``.
        shared_joint_groups: Source groups of drywall-join with variants in both train and valid.
    """

    root: Path
    cracks: Path
    drywall_join: Path
    image_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    shared_joint_groups: tuple[str, ...] = ()

    @property
    def dataset_roots(self) -> tuple[Path, Path]:
        """``(cracks, drywall_join)``: the folders to pass to :meth:`AnnotatedDataset.load`."""
        return (self.cracks, self.drywall_join)

    @property
    def total_images(self) -> int:
        """Number of images written, over both datasets."""
        return sum(n for counts in self.image_counts.values() for n in counts.values())

    def __repr__(self) -> str:
        return (
            f"SampleDataPaths({str(self.root)!r}, {self.total_images} images, {self.image_counts}, "
            f"{len(self.shared_joint_groups)} drywall-join group(s) shared by train and valid)"
        )


def generate_sample_data(
    out: str | os.PathLike,
    *,
    images: int = 100,
    seed: int = 0,
    size: int = 384,
    crack_fraction: float = 0.5,
    progress: bool = False,
) -> SampleDataPaths:
    """Render synthetic drywall photos and write them as two Roboflow COCO datasets under ``out``.

    The output is a deterministic function of the arguments: the same call writes the same
    bytes. ``out`` must be missing, empty, or a previous output of this function (which is then
    regenerated: files of the previous run that the new one does not write are removed).

    Args:
        out: Output folder.
        images: Total number of images over both datasets.
        seed: Non-negative seed of every random choice.
        size: Width and height of every image in pixels (square, like the real 640×640 exports).
        crack_fraction: Share of ``images`` that goes to the crack dataset; the rest are joints.
        progress: Show a progress bar on stderr.

    Returns:
        The dataset roots, image counts per split and the drywall-join groups shared by splits.

    Raises:
        ConfigError: If an argument is out of range (the message gives the valid range).
        DrywallQAError: If ``out`` is a file, or a non-empty folder that is not sample data.
    """
    n_cracks, n_joints = _check_arguments(images, seed, size, crack_fraction)
    root = Path(out)
    previous_files = _previous_output_files(root)

    plan_rng = np.random.default_rng([seed, 0])
    crack_sources = _plan_sources(plan_rng, CRACKS_DATASET, n_cracks, CRACK_SPLIT_FRACTIONS, seed, min_groups=3)
    joint_sources = _plan_sources(plan_rng, JOINTS_DATASET, n_joints, JOINT_SPLIT_FRACTIONS, seed, min_groups=2)
    shared = _share_joint_groups(plan_rng, joint_sources)
    planned = sorted(
        {_rel(s.dataset, v.split, v.file_name) for s in crack_sources + joint_sources for v in s.variants}
        | {_rel(CRACKS_DATASET, split, ANNOTATION_FILE) for split in CRACK_SPLIT_FRACTIONS}
        | {_rel(JOINTS_DATASET, split, name) for split in JOINT_SPLIT_FRACTIONS
           for name in (ANNOTATION_FILE, TRUTH_ANNOTATION_FILE)}
        | {"README.md"}
    )
    manifest = {
        "generator": GENERATOR, "format_version": FORMAT_VERSION, "complete": False,
        "arguments": {"images": images, "seed": seed, "size": size, "crack_fraction": crack_fraction},
        # While writing, list old and new files, so an interrupted run can still be cleaned up.
        "files": sorted(set(previous_files) | set(planned)),
    }
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)

    writers = {
        CRACKS_DATASET: _CocoWriter(CRACK_CATEGORIES, CRACK_SPLIT_FRACTIONS),
        JOINTS_DATASET: _CocoWriter(JOINT_CATEGORIES, JOINT_SPLIT_FRACTIONS),
    }
    bar = _progress_bar(images, progress)
    for source in crack_sources + joint_sources:
        _render_source(root, source, writers[source.dataset], seed, size)
        bar.update(len(source.variants))
    bar.close()

    _choose_crack_segmentation_kinds(writers[CRACKS_DATASET])
    for dataset, writer in writers.items():
        writer.write(root / dataset, truth=dataset == JOINTS_DATASET)
    counts = {dataset: writer.image_counts() for dataset, writer in writers.items()}
    atomic_write_text(
        root / "README.md",
        _README.format(seed=seed, images=images, size=size, shared=", ".join(f"`{g}`" for g in shared) or "none"),
    )
    manifest.update(complete=True, files=planned, image_counts=counts, shared_groups={JOINTS_DATASET: list(shared)})
    atomic_write_json(root / MANIFEST_FILE, manifest, indent=1)
    _remove_stale_files(root, set(previous_files) - set(planned))
    return SampleDataPaths(root, root / CRACKS_DATASET, root / JOINTS_DATASET, counts, tuple(shared))


# -- arguments and output folder ------------------------------------------------------------------
def _check_arguments(images: int, seed: int, size: int, crack_fraction: float) -> tuple[int, int]:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"sample data: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ConfigError(f"sample data: size must be an integer >= {MIN_SIZE} pixels, got {size!r}")
    if not 0.0 < float(crack_fraction) < 1.0:
        raise ConfigError(f"sample data: crack_fraction must be between 0 and 1 (exclusive), got {crack_fraction!r}")
    minimum = 2 * MIN_IMAGES_PER_DATASET
    if not isinstance(images, (int, np.integer)) or images < minimum:
        raise ConfigError(f"sample data: images must be an integer >= {minimum}, got {images!r}")
    n_cracks = int(round(images * float(crack_fraction)))
    n_joints = int(images) - n_cracks
    if min(n_cracks, n_joints) < MIN_IMAGES_PER_DATASET:
        raise ConfigError(
            f"sample data: {images} images with crack_fraction={crack_fraction} gives {n_cracks} crack and "
            f"{n_joints} joint images; each needs >= {MIN_IMAGES_PER_DATASET} "
            "(raise images or move crack_fraction towards 0.5)"
        )
    return n_cracks, n_joints


def read_manifest(root: str | os.PathLike) -> dict:
    """The manifest of a sample-data folder: arguments, files written, image counts, shared groups.

    Raises:
        DrywallQAError: If ``root`` has no manifest or it was not written by this generator.
    """
    path = Path(root) / MANIFEST_FILE
    data = read_json(path)
    if not isinstance(data, dict) or data.get("generator") != GENERATOR:
        raise DrywallQAError(f"{path}: not a sample-data manifest")
    return data


def _previous_output_files(root: Path) -> list[str]:
    """Files a previous run wrote into ``root`` (empty for a new folder); refuse foreign folders."""
    if root.exists() and not root.is_dir():
        raise DrywallQAError(f"{root}: exists and is not a folder; choose a new or empty output folder")
    if not root.exists() or not any(root.iterdir()):
        return []
    try:
        manifest = read_manifest(root)
    except DrywallQAError:
        raise DrywallQAError(
            f"{root}: folder is not empty and is not a previous sample-data output; choose a new or empty folder"
        ) from None
    return [str(f) for f in manifest.get("files", []) if isinstance(f, str)]


def _remove_stale_files(root: Path, stale: set[str]) -> None:
    resolved_root = root.resolve()
    for rel in sorted(stale):
        path = (root / rel).resolve()
        # Only delete inside the output folder, whatever an edited manifest says.
        if resolved_root in path.parents and path.is_file():
            path.unlink()


def _rel(dataset: str, split: str, name: str) -> str:
    return f"{dataset}/{split}/{name}"


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> _NoProgress:
    """A tqdm bar on stderr, or a stand-in with the same two methods that shows nothing."""
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc="sample data", unit="image", file=sys.stderr)


# -- planning: sources, variants, splits ----------------------------------------------------------
@dataclass(frozen=True)
class _Transform:
    """A Roboflow-like augmentation of a source rendering.

    ``crop`` is ``(left, top, side)`` as fractions of the image size, so a plan does not depend
    on the pixel size; the window is resized back to the full size.
    """

    kind: str
    crop: tuple[float, float, float] | None = None

    def window(self, size: int) -> tuple[int, int, int]:
        """The crop window ``(x0, y0, side)`` in pixels of a ``size``-pixel source."""
        side = int(round(self.crop[2] * size))
        x0, y0 = (min(int(round(f * size)), size - side) for f in self.crop[:2])
        return x0, y0, side

    def describe(self, size: int) -> dict:
        """JSON-ready description: ``{"transform": kind}``, plus ``"crop": [x0, y0, side]``."""
        return {"transform": self.kind, **({"crop": list(self.window(size))} if self.kind == "crop" else {})}

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Transform an ``(S, S, 3)`` uint8 image or an ``(S, S)`` bool mask."""
        if self.kind == "identity":
            return array
        if self.kind == "hflip":
            return np.ascontiguousarray(array[:, ::-1])
        if self.kind == "vflip":
            return np.ascontiguousarray(array[::-1])
        if self.kind.startswith("rot"):
            return np.ascontiguousarray(np.rot90(array, int(self.kind[3:]) // 90))
        size = array.shape[1]
        x0, y0, side = self.window(size)
        window = array[y0:y0 + side, x0:x0 + side]
        if array.dtype == bool:
            # Resize the mask as coverage and keep pixels at least half covered, as the image is.
            return cv2.resize(window.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR) >= 0.5
        return cv2.resize(window, (size, size), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class _Variant:
    split: str
    transform: _Transform
    file_name: str


@dataclass
class _Source:
    """One rendered source photo and the exported variants of it."""

    dataset: str
    name: str
    index: int
    background: bool
    variants: list[_Variant]


def _plan_sources(
    rng: np.random.Generator, dataset: str, n_images: int, fractions: dict[str, float], seed: int, min_groups: int
) -> list[_Source]:
    """Split ``n_images`` into source groups of 1-3 variants and assign groups to splits."""
    counts: list[int] = []
    while sum(counts) < n_images:
        counts.append(min(int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3])), n_images - sum(counts)))
    while len(counts) < min_groups:  # tiny datasets: break up groups until every split can get one
        largest = int(np.argmax(counts))
        counts[largest] -= 1
        counts.insert(largest + 1, 1)
    if max(counts) < 2 and len(counts) > min_groups:  # at least one group with several variants
        counts[0] += counts.pop()
    background = rng.random(len(counts)) < 0.12
    background[0] = False  # never a dataset of backgrounds only
    if not background.any():
        background[-1] = True
    prefix = "crack-photo" if dataset == CRACKS_DATASET else "wall-photo"
    names = [f"{prefix}-{i:04d}" for i in range(len(counts))]
    split_of = split_groups(dict(zip(names, counts)), fractions, seed=seed)
    sources = []
    for index, (name, count) in enumerate(zip(names, counts)):
        kinds = ["identity", *rng.choice(_TRANSFORMS, size=count - 1, replace=False).tolist()]
        variants = []
        for v, kind in enumerate(kinds):
            crop = None
            if kind == "crop":
                side = rng.uniform(0.65, 0.85)
                crop = (rng.uniform(0, 1 - side), rng.uniform(0, 1 - side), side)
            digest = hashlib.md5(f"{seed}/{dataset}/{name}/{v}".encode(), usedforsecurity=False).hexdigest()
            variants.append(_Variant(split_of[name], _Transform(kind, crop), f"{name}_jpg.rf.{digest}.jpg"))
        sources.append(_Source(dataset, name, index, bool(background[index]), variants))
    return sources


def _share_joint_groups(rng: np.random.Generator, sources: list[_Source]) -> list[str]:
    """Move one variant of a few multi-variant groups across train/valid, as the real export has."""
    candidates = [s for s in sources if len(s.variants) > 1]
    n_valid_groups = sum(1 for s in sources if s.variants[0].split == "valid")
    n_shared = min(len(candidates), max(2, round(0.4 * n_valid_groups)))
    chosen = sorted(rng.choice(len(candidates), size=n_shared, replace=False).tolist())
    shared = []
    for i in chosen:
        source = candidates[i]
        # Group in train: its last variant goes to valid; group in valid: its first goes to train.
        position, split = (-1, "valid") if source.variants[0].split == "train" else (0, "train")
        moved = source.variants[position]
        source.variants[position] = _Variant(split, moved.transform, moved.file_name)
        shared.append(source.name)
    return sorted(shared)


# -- COCO assembly ------------------------------------------------------------------------------
@dataclass
class _CrackAnnotation:
    record: dict
    rle: dict  # compressed
    uncompressed_rle: dict
    polygons: list[list[int]] | None  # None when outlines cannot reproduce the mask (holes)
    kind: str  # "polygon", "rle" (compressed) or "rle-uncompressed"


class _CocoWriter:
    """Collects image and annotation entries per split and writes the split json files."""

    def __init__(self, categories: list[dict], fractions: dict[str, float]):
        self.categories = categories
        self.images: dict[str, list[dict]] = {split: [] for split in fractions}
        self.boxes: dict[str, list[dict]] = {split: [] for split in fractions}
        self.truth: dict[str, list[dict]] = {split: [] for split in fractions}
        self.cracks: dict[str, list[_CrackAnnotation]] = {split: [] for split in fractions}

    def add_image(self, split: str, file_name: str, size: int, source: str, transform: dict) -> int:
        image_id = len(self.images[split])
        # "extra" is where Roboflow keeps the source name; the transform lets tests rebuild masks.
        self.images[split].append({
            "id": image_id, "license": 1, "file_name": file_name, "height": size, "width": size,
            "date_captured": _DATE, "extra": {"name": f"{source}.jpg", **transform},
        })
        return image_id

    def next_annotation_id(self, split: str) -> int:
        return len(self.boxes[split]) + len(self.cracks[split])

    def image_counts(self) -> dict[str, int]:
        return {split: len(entries) for split, entries in self.images.items()}

    def write(self, dataset_root: Path, truth: bool) -> None:
        for split, images in self.images.items():
            annotations = self.boxes[split] + [_crack_record(a) for a in self.cracks[split]]
            annotations.sort(key=lambda a: a["id"])
            coco = {"info": _INFO, "licenses": _LICENSES, "categories": self.categories,
                    "images": images, "annotations": annotations}
            atomic_write_json(dataset_root / split / ANNOTATION_FILE, coco)
            if truth:
                truth_coco = {**coco, "annotations": self.truth[split]}
                atomic_write_json(dataset_root / split / TRUTH_ANNOTATION_FILE, truth_coco)


def _crack_record(annotation: _CrackAnnotation) -> dict:
    record = dict(annotation.record)
    if annotation.kind == "polygon":
        record["segmentation"] = annotation.polygons
    elif annotation.kind == "rle":
        record["segmentation"] = annotation.rle
    else:
        record["segmentation"] = annotation.uncompressed_rle
    return record


def _choose_crack_segmentation_kinds(writer: _CocoWriter) -> None:
    """Make sure polygons, compressed RLE and uncompressed RLE all occur at least once.

    Converts polygon annotations while at least one polygon remains, so all three kinds are
    guaranteed once the crack dataset has three annotations (any sample data of 20+ images).
    """
    annotations = [a for split in writer.cracks for a in writer.cracks[split]]
    for kind in ("rle", "rle-uncompressed"):
        if annotations and not any(a.kind == kind for a in annotations):
            convertible = [a for a in annotations if a.kind == "polygon"]
            if len(convertible) > 1:
                convertible[0].kind = kind


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO RLE with a list of run lengths (column-major, starting with a run of zeros)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _mask_polygons(mask: np.ndarray, min_iou: float = 0.98) -> list[list[int]] | None:
    """Outlines of a mask as flat integer ``[x1, y1, x2, y2, ...]`` lists, or None if they cannot
    reproduce it (holes, or an IoU below ``min_iou`` when redrawn).

    Contour vertices are pixel centres, so inclusive ``fillPoly`` rasterisation (the convention
    of :func:`drywallqa.data.masks.polygons_to_mask`) redraws the mask exactly in practice.
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None or (hierarchy[0][:, 3] >= 0).any():
        return None
    outlines = []
    for contour in contours:
        points = contour.reshape(-1, 2)
        if len(points) < 3:  # one- or two-pixel pieces: repeat a vertex, COCO needs three
            points = np.concatenate([points, np.repeat(points[-1:], 3 - len(points), axis=0)])
        outlines.append(points)
    redrawn = polygons_to_mask(outlines, *mask.shape)
    if (redrawn & mask).sum() < min_iou * (redrawn | mask).sum():
        return None
    return [[int(v) for v in points.reshape(-1)] for points in outlines]


# -- rendering ----------------------------------------------------------------------------------
_DATASET_CODES = {CRACKS_DATASET: 1, JOINTS_DATASET: 2}
_CLASS_NAMES = {CRACKS_DATASET: "crack", JOINTS_DATASET: "taping_area"}


@dataclass(frozen=True)
class RenderedImage:
    """One synthetic drywall photo with the exact mask of every object drawn in it.

    Attributes:
        image: RGB ``uint8`` ``(S, S, 3)``.
        masks: One ``(S, S)`` bool mask per crack or joint; empty for a background image.
        dataset: ``"cracks"`` or ``"drywall-join"``: which kind of scene it is.
        class_name: Prompt class of the masks: ``"crack"`` or ``"taping_area"``.
    """

    image: np.ndarray
    masks: tuple[np.ndarray, ...]
    dataset: str
    class_name: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}")
        for mask in self.masks:
            if mask.shape != self.image.shape[:2] or mask.dtype != bool:
                raise ValueError(f"masks must be bool {self.image.shape[:2]}, got {mask.dtype} {mask.shape}")

    @property
    def mask(self) -> np.ndarray:
        """Union of the object masks, ``(S, S)`` bool."""
        out = np.zeros(self.image.shape[:2], dtype=bool)
        for mask in self.masks:
            out |= mask
        return out

    def __repr__(self) -> str:
        height, width = self.image.shape[:2]
        return (
            f"RenderedImage({self.dataset!r}, {width}x{height}, {len(self.masks)} {self.class_name} mask(s), "
            f"coverage={self.mask.mean():.3f})"
        )


def render_sample_image(
    dataset: str, seed: int | Sequence[int] = 0, *, size: int = 384, background: bool = False
) -> RenderedImage:
    """Render one synthetic drywall photo and its exact masks, without writing anything.

    :func:`generate_sample_data` renders source photo ``<prefix>-NNNN`` of a run with seed ``S``
    as ``render_sample_image(dataset, (S, NNNN), size=size, background=...)`` and exports
    transformed variants of it, so tests can recompute any image's true masks.

    Args:
        dataset: ``"cracks"`` (a mostly painted wall with 1-3 branching cracks, sometimes an
            unannotated joint and screw spots as distractors) or ``"drywall-join"`` (a wall with
            1-3 joints, taped or bare seams, and screw spots).
        seed: Seed, or a sequence of non-negative ints, of the random scene.
        size: Width and height in pixels.
        background: Draw no cracks or joints (distractors still appear).

    Returns:
        The image and one mask per drawn object.
    """
    if dataset not in _DATASET_CODES:
        raise ConfigError(f"sample data: unknown dataset {dataset!r}; expected one of {sorted(_DATASET_CODES)}")
    rng = np.random.default_rng([_DATASET_CODES[dataset], *np.atleast_1d(np.asarray(seed, dtype=np.int64)).tolist()])
    render = _render_crack_scene if dataset == CRACKS_DATASET else _render_joint_scene
    image, masks = render(rng, int(size), not background)
    pixels = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return RenderedImage(pixels, tuple(masks), dataset, _CLASS_NAMES[dataset])


def _render_source(root: Path, source: _Source, writer: _CocoWriter, seed: int, size: int) -> None:
    """Render one source photo, then write each of its variants with transformed masks."""
    rendered = render_sample_image(source.dataset, (seed, source.index), size=size, background=source.background)
    # Export choices (JPEG quality, segmentation kind) get their own stream, so the rendering of
    # a source does not depend on how it is exported.
    rng = np.random.default_rng([_DATASET_CODES[source.dataset], seed, source.index, 1])
    for variant in source.variants:
        transform = variant.transform
        pixels = transform.apply(rendered.image)
        quality = int(rng.integers(84, 93))  # mild compression, varying like photos from several phones
        write_image(root / source.dataset / variant.split / variant.file_name, pixels, quality=quality)
        image_id = writer.add_image(variant.split, variant.file_name, size, source.name, transform.describe(size))
        for mask in rendered.masks:
            mask = transform.apply(mask)
            box = mask_to_box(mask)
            if box is None:  # cropped away
                continue
            x1, y1, x2, y2 = (int(v) for v in box)
            record = {"id": writer.next_annotation_id(variant.split), "image_id": image_id, "category_id": 1,
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
            if source.dataset == JOINTS_DATASET:
                writer.boxes[variant.split].append({**record, "area": (x2 - x1) * (y2 - y1), "segmentation": []})
                truth = {**record, "area": int(mask.sum()), "segmentation": mask_to_rle(mask)}
                writer.truth[variant.split].append(truth)
            else:
                polygons = _mask_polygons(mask)
                draw = rng.random()
                # Outlines with holes cannot be polygons; a few others become RLE so every
                # segmentation kind a COCO file can hold is exercised.
                kind = "rle-uncompressed" if polygons is None or draw < 0.05 else "rle" if draw < 0.10 else "polygon"
                writer.cracks[variant.split].append(
                    _CrackAnnotation({**record, "area": float(mask.sum())}, mask_to_rle(mask),
                                     _uncompressed_rle(mask), polygons, kind)
                )


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Unit-variance-ish noise varying over ``size / cells`` pixels, ``(size, size)`` float32."""
    coarse = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(coarse, (size * (cells + 3) // cells,) * 2, interpolation=cv2.INTER_CUBIC)
    offset = (big.shape[0] - size) // 2  # drop the cubic resize's border artefacts
    return big[offset:offset + size, offset:offset + size]


def _smooth_curve(rng: np.random.Generator, knots: int, coords: np.ndarray, extent: float, scale: float) -> np.ndarray:
    """A random 1-D function (linear between ``knots`` points over ``[-extent, extent]``) at ``coords``."""
    grid = np.linspace(-extent, extent, knots)
    return np.interp(coords, grid, rng.normal(0.0, scale, knots)).astype(np.float32)


_WALL_COLOURS = {
    # Mean RGB of bare gypsum board paper and of common painted finishes.
    "board": (176, 172, 162), "grey board": (165, 165, 160), "primer": (214, 212, 206),
    "warm white": (218, 210, 196), "beige": (204, 193, 172), "light grey": (196, 196, 192),
    "green board": (112, 170, 150),  # moisture-resistant board
}


def _render_wall(rng: np.random.Generator, size: int, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """Painted or bare gypsum: base colour, low-frequency shading, mottling and fine grain.

    Returns:
        ``(image, grain)``: ``(S, S, 3)`` float32 image in 0-255 and the ``(S, S)`` grain field,
        reused so joint compound shares the wall's grain at a lower strength.
    """
    base = np.array(_WALL_COLOURS[colour], dtype=np.float32) + rng.normal(0.0, 2.5, 3).astype(np.float32)
    shading = 6.0 * _smooth_noise(rng, size, int(rng.integers(2, 5)))
    mottling = 1.5 * _smooth_noise(rng, size, max(8, size // 16))
    noise = rng.standard_normal((size, size), dtype=np.float32)
    if "board" in colour:
        # Board paper has a faint fibre direction; paint has an isotropic roller stipple.
        grain = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.6, sigmaY=0.6) * rng.uniform(4.0, 6.0)
    else:
        grain = cv2.GaussianBlur(noise, (0, 0), 0.8) * rng.uniform(3.0, 5.0)
    image = base[None, None, :] + (shading + mottling + grain)[..., None]
    image += 0.6 * rng.standard_normal((size, size, 3), dtype=np.float32)  # slight chroma noise
    return image, grain


def _render_joint_scene(rng: np.random.Generator, size: int, with_joints: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A wall with 1-3 joints, taped or bare seams (none for a background image), and screw spots."""
    # Half the walls are photographed before taping (bare seams, as in most of the real export),
    # half after, mostly on bare board, where the mudded tape stands out white.
    taped = rng.random() < 0.5
    colour = str(rng.choice(["board", "board", "board", "grey board", "grey board", "primer"] if taped else
                            ["board", "grey board", "primer", "primer", "green board"]))
    image, grain = _render_wall(rng, size, colour)
    masks = []
    if with_joints:
        n_joints = int(rng.choice([1, 2, 3], p=[0.55, 0.35, 0.10]))
        compound_rgb = _compound_colour(rng, image, colour)
        for orientation in _joint_orientations(rng, n_joints):
            if taped:
                mask = _paint_joint(rng, image, grain, orientation, compound_rgb)
            else:
                mask = _paint_seam(rng, image, orientation)
            if mask.any():
                masks.append(mask)
    _paint_screws(rng, image)
    return _light_and_expose(rng, image), masks


def _render_crack_scene(rng: np.random.Generator, size: int, with_cracks: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A mostly painted wall with 1-3 branching cracks (none for a background image)."""
    colour = str(rng.choice(["primer", "warm white", "beige", "light grey", "board"]))
    image, grain = _render_wall(rng, size, colour)
    if rng.random() < 0.3:  # an unannotated joint as a distractor
        _paint_joint(rng, image, grain, _joint_orientations(rng, 1)[0], _compound_colour(rng, image, colour))
    if rng.random() < 0.5:
        _paint_screws(rng, image)
    masks = []
    if with_cracks:
        n_cracks = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        darkness = np.zeros((size, size), dtype=np.float32)
        for _ in range(n_cracks):
            mask = _draw_crack(rng, size, darkness)
            if mask.any():
                masks.append(mask)
        _paint_cracks(rng, image, darkness)
    return _light_and_expose(rng, image), masks


def _joint_orientations(rng: np.random.Generator, n_joints: int) -> list[str]:
    first = str(rng.choice(["vertical", "horizontal", "diagonal"], p=[0.5, 0.3, 0.2]))
    others = rng.choice(["vertical", "horizontal", "diagonal"], size=n_joints - 1, p=[0.4, 0.4, 0.2]).tolist()
    return [first, *others]


def _compound_colour(rng: np.random.Generator, image: np.ndarray, colour: str) -> np.ndarray:
    """RGB of joint compound on this wall: neutral white on bare board, the paint colour when painted."""
    wall_rgb = image.reshape(-1, 3).mean(axis=0)
    if "board" in colour:
        return np.full(3, wall_rgb.mean() + rng.uniform(20.0, 45.0), dtype=np.float32)
    # Paint covers wall and compound alike: only a slightly brighter, smoother band shows.
    return (wall_rgb + rng.uniform(2.0, 7.0)).astype(np.float32)


def _joint_coordinates(rng: np.random.Generator, size: int, orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Signed pixel distances along and across a random straight joint line: ``(S, S)`` each."""
    xs, ys = _pixel_grid(size)
    if orientation == "vertical":
        angle = math.pi / 2 + rng.normal(0.0, 0.025)
    elif orientation == "horizontal":
        angle = rng.normal(0.0, 0.025)
    else:
        angle = rng.choice([-1, 1]) * rng.uniform(0.4, 1.15)
    centre = rng.uniform(0.15, 0.85, 2) * size
    along_axis = np.array([math.cos(angle), math.sin(angle)], dtype=np.float32)
    across_axis = np.array([-along_axis[1], along_axis[0]], dtype=np.float32)
    along = (xs - centre[0]) * along_axis[0] + (ys - centre[1]) * along_axis[1]
    across = (xs - centre[0]) * across_axis[0] + (ys - centre[1]) * across_axis[1]
    return along, across


def _paint_seam(rng: np.random.Generator, image: np.ndarray, orientation: str) -> np.ndarray:
    """Paint one untaped butt joint between two boards into ``image``; return its true mask.

    Most photos of the real drywall-join export show boards before taping: the joint is a thin
    dark gap with a slight change of tone between the two boards. The true mask is the band the
    paper tape (52 mm, about 4-7 % of a panel photo) will cover, centred on the gap.
    """
    size = image.shape[0]
    along, across = _joint_coordinates(rng, size, orientation)
    # The two boards catch the light a little differently; the step is soft over a pixel or two.
    image += (rng.normal(0.0, 5.0) * _smoothstep(across / 3.0 + 0.5))[..., None]
    gap_half = rng.uniform(0.5, 1.3)
    gap = np.exp(-((across / gap_half) ** 2))
    mask = np.abs(across) <= size * rng.uniform(0.02, 0.035)
    if rng.random() < 0.25:  # a board ending inside the picture (a T joint)
        end = rng.uniform(-0.3, 0.3) * size
        gap *= 1.0 - _smoothstep(along - end + 0.5)
        mask &= along <= end
    image *= (1.0 - rng.uniform(0.25, 0.55) * gap)[..., None]
    return mask


def _paint_joint(
    rng: np.random.Generator, image: np.ndarray, grain: np.ndarray, orientation: str, compound_rgb: np.ndarray
) -> np.ndarray:
    """Paint one paper-tape joint under feathered compound into ``image``; return its true mask.

    The joint is a straight band; compound opacity falls smoothly from the tape to the feathered
    edge, and the true mask is where the opacity is at least one half, so the mask is exactly
    the visible band.
    """
    size = image.shape[0]
    along, across = _joint_coordinates(rng, size, orientation)
    tape_half = size * rng.uniform(0.018, 0.03)
    feather = tape_half * rng.uniform(1.5, 4.0)  # compound is spread well beyond the tape
    # Each mud edge wanders a little along the joint: trowelled edges are never ruler-straight.
    edge_left = _smooth_curve(rng, 14, along, size, 0.12 * feather)
    edge_right = _smooth_curve(rng, 14, along, size, 0.12 * feather)
    excess = np.where(across < 0, -across - edge_left, across - edge_right) - tape_half
    opacity = 1.0 - _smoothstep(excess / feather)
    if rng.random() < 0.25:  # a butt joint ending inside the picture
        end = rng.uniform(-0.3, 0.3) * size
        opacity *= 1.0 - _smoothstep((along - end) / feather + 0.5)

    streaks = _smooth_curve(rng, int(size // 2), across, size, 1.8)  # trowel marks along the joint
    sanding = 3.0 * _smooth_noise(rng, size, max(4, size // 32))
    # Compound is smoother than board paper: a little of the wall's grain, plus its own marks.
    compound = compound_rgb + (streaks + sanding + 0.4 * grain)[..., None]
    image *= 1.0 - opacity[..., None]
    image += compound * opacity[..., None]

    tape_visibility = rng.uniform(0.0, 0.8)
    on_tape = (1.0 - _smoothstep((np.abs(across) - tape_half) / 1.5 + 0.5)) * opacity
    tape_tint = np.array([-3.0, -4.0, -9.0], dtype=np.float32)  # paper tape: slightly cream
    image += (tape_visibility * on_tape)[..., None] * tape_tint
    tape_edges = np.exp(-(((np.abs(across) - tape_half) / 0.9) ** 2)) * opacity
    crease = np.exp(-((across / 0.8) ** 2)) * opacity
    image -= (tape_visibility * (4.0 * tape_edges + 3.0 * crease))[..., None]
    return opacity >= 0.5


def _paint_screws(rng: np.random.Generator, image: np.ndarray) -> None:
    """Screw heads in rows along studs: compound spots or bare dimples (never annotated)."""
    size = image.shape[0]
    spacing = size * rng.uniform(0.25, 0.42)
    pitch = size * rng.uniform(0.11, 0.2)
    patches = np.zeros((size, size), dtype=np.float32)
    dimples = np.zeros((size, size), dtype=np.float32)
    radius = max(1, int(round(size * rng.uniform(0.004, 0.008))))
    mudded = rng.random() < 0.6
    for x in np.arange(rng.uniform(0, spacing), size, spacing):
        for y in np.arange(rng.uniform(0, pitch), size, pitch):
            if rng.random() < 0.15:
                continue
            cx, cy = int(x + rng.normal(0, 1.5)), int(y + rng.normal(0, 2.0))
            if mudded:
                axes = (int(radius * rng.uniform(2.0, 3.5)), int(radius * rng.uniform(1.5, 2.5)))
                cv2.ellipse(patches, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
            else:
                cv2.circle(dimples, (cx, cy), radius, 1.0, -1)
    patches = cv2.GaussianBlur(patches, (0, 0), 1.2)
    dimples = cv2.GaussianBlur(dimples, (0, 0), 0.7)
    image += (patches * rng.uniform(4.0, 10.0))[..., None]
    image -= (dimples * rng.uniform(12.0, 30.0))[..., None]


def _draw_crack(rng: np.random.Generator, size: int, darkness: np.ndarray) -> np.ndarray:
    """Draw one branching crack; return its mask and add its depth to ``darkness`` (0-1)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    start = rng.uniform(0.1, 0.9, 2) * size
    heading = rng.uniform(0, 2 * math.pi)
    width = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.35, 0.2, 0.1]))
    steps = int(rng.integers(30, 90))
    pending = [(start, heading, width, steps, 0)]
    while pending:
        point, heading, width, steps, depth = pending.pop()
        wander, width_drift = 0.0, 0.0
        step_length = size / 96.0
        for i in range(steps):
            # AR(1) wander around a main direction: jagged, but the crack keeps its course.
            wander = 0.75 * wander + rng.normal(0.0, 0.38)
            length = step_length * rng.uniform(0.6, 1.4)
            nxt = point + length * np.array([math.cos(heading + wander), math.sin(heading + wander)])
            taper = math.sin(math.pi * (i + 0.5) / steps) ** 0.5
            # Width drifts slowly: per-step jumps would look like a string of beads.
            width_drift = 0.92 * width_drift + rng.normal(0.0, 0.08)
            thickness = max(1, int(round(width * (0.45 + 0.55 * taper) + width_drift)))
            p, q = tuple(int(round(v)) for v in point), tuple(int(round(v)) for v in nxt)
            cv2.line(mask, p, q, 1, thickness=thickness, lineType=cv2.LINE_8)
            shade = min(1.0, 0.45 + 0.15 * thickness)
            cv2.line(darkness, p, q, shade, thickness=thickness, lineType=cv2.LINE_8)
            if depth < 2 and width > 1 and rng.random() < 0.05:
                branch = heading + wander + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
                pending.append((nxt.copy(), branch, width - 1, int(steps * rng.uniform(0.2, 0.5)), depth + 1))
            point = nxt
            if not (-size * 0.2 < point[0] < size * 1.2 and -size * 0.2 < point[1] < size * 1.2):
                break
    # Pinholes where thick strokes overlap would force an RLE; make them crack, as they look.
    pinholes = _small_holes(mask.astype(bool), max_area=12)
    darkness[pinholes] = np.maximum(darkness[pinholes], 0.75)
    return mask.astype(bool) | pinholes


def _small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Background pixels enclosed by ``mask`` in pieces of at most ``max_area`` pixels."""
    # 4-connected background pairs with 8-connected foreground, the convention of findContours.
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    small = np.zeros(count, dtype=bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small[border] = False
    return small[labels] & ~mask


def _paint_cracks(rng: np.random.Generator, image: np.ndarray, darkness: np.ndarray) -> None:
    """Darken the drawn cracks, with a soft rim and a shadow cast away from the light."""
    strength = rng.uniform(0.45, 0.75)
    core = np.maximum(darkness, cv2.GaussianBlur(darkness, (0, 0), 0.7))
    light = rng.uniform(0, 2 * math.pi)
    shift = np.float32([[1, 0, 1.5 * math.cos(light)], [0, 1, 1.5 * math.sin(light)]])
    shadow = cv2.GaussianBlur(cv2.warpAffine(darkness, shift, darkness.shape[::-1]), (0, 0), 1.3)
    factor = 1.0 - strength * core - 0.25 * strength * shadow * (darkness == 0)
    tint = np.array([1.0, 0.97, 0.92], dtype=np.float32)  # crack interiors look slightly brown
    image *= np.clip(factor, 0.0, 1.0)[..., None] ** tint


def _light_and_expose(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Directional lighting gradient, vignetting, white balance, exposure and sensor noise."""
    size = image.shape[0]
    xs, ys = _pixel_grid(size)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = ((xs - size / 2) * math.cos(direction) + (ys - size / 2) * math.sin(direction)) / size
    radius2 = ((xs - size / 2) ** 2 + (ys - size / 2) ** 2) / (size / 2) ** 2
    light = (1.0 + rng.uniform(0.05, 0.3) * ramp) * (1.0 - rng.uniform(0.03, 0.22) * radius2)
    # Indoor light is mostly warm; a small random cast on top.
    white_balance = (np.float32([1.015, 1.0, 0.975]) + rng.normal(0.0, 0.012, 3)).astype(np.float32)
    image *= light[..., None] * white_balance * rng.uniform(0.78, 1.08)
    image += 1.5 * rng.standard_normal(image.shape, dtype=np.float32)
    return image
