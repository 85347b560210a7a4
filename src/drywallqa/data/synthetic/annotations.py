"""COCO assembly for the synthetic sample datasets: categories, image and annotation records.

:class:`CocoCollector` gathers the entries of one dataset per split while sources are rendered,
then writes ``_annotations.coco.json`` (and, for drywall-join, the true masks in
``_annotations.truth.coco.json``) through :func:`drywallqa.data.formats.coco.write_coco`.
Crack shapes are kept in every form until the end, so that :func:`choose_crack_segmentation_kinds`
can make sure polygons, compressed and uncompressed RLE all occur.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drywallqa.data.formats.coco import ANNOTATION_FILE, write_coco
from drywallqa.data.masks import mask_to_rle, polygons_to_mask

TRUTH_ANNOTATION_FILE = "_annotations.truth.coco.json"


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


@dataclass
class CrackAnnotation:
    """A crack annotation in every segmentation form, until the form to write is chosen."""

    record: dict
    rle: dict  # compressed
    uncompressed_rle: dict
    polygons: list[list[int]] | None  # None when outlines cannot reproduce the mask (holes)
    kind: str  # "polygon", "rle" (compressed) or "rle-uncompressed"


class CocoCollector:
    """Collects image and annotation entries per split and writes the split json files."""

    def __init__(self, categories: list[dict], fractions: dict[str, float]):
        self.categories = categories
        self.images: dict[str, list[dict]] = {split: [] for split in fractions}
        self.boxes: dict[str, list[dict]] = {split: [] for split in fractions}
        self.truth: dict[str, list[dict]] = {split: [] for split in fractions}
        self.cracks: dict[str, list[CrackAnnotation]] = {split: [] for split in fractions}

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

    def add_joint(self, split: str, record: dict, mask: np.ndarray) -> None:
        """A box-only joint annotation, and its true ``(S, S)`` bool mask as RLE for the truth file."""
        x, y, w, h = record["bbox"]
        self.boxes[split].append({**record, "area": w * h, "segmentation": []})
        self.truth[split].append({**record, "area": int(mask.sum()), "segmentation": mask_to_rle(mask)})

    def add_crack(self, split: str, record: dict, mask: np.ndarray, draw: float) -> None:
        """A crack annotation traced from its ``(S, S)`` bool mask.

        ``draw`` (uniform in [0, 1)) picks the segmentation form: outlines with holes cannot be
        polygons; a few others become RLE so every segmentation kind a COCO file can hold is
        exercised.
        """
        polygons = _mask_polygons(mask)
        kind = "rle-uncompressed" if polygons is None or draw < 0.05 else "rle" if draw < 0.10 else "polygon"
        self.cracks[split].append(
            CrackAnnotation({**record, "area": float(mask.sum())}, mask_to_rle(mask), _uncompressed_rle(mask), polygons, kind)
        )

    def image_counts(self) -> dict[str, int]:
        return {split: len(entries) for split, entries in self.images.items()}

    def write(self, dataset_root: Path, truth: bool) -> None:
        for split, images in self.images.items():
            annotations = self.boxes[split] + [_crack_record(a) for a in self.cracks[split]]
            annotations.sort(key=lambda a: a["id"])
            coco = {"info": _INFO, "licenses": _LICENSES, "categories": self.categories,
                    "images": images, "annotations": annotations}
            write_coco(dataset_root / split / ANNOTATION_FILE, coco)
            if truth:
                truth_coco = {**coco, "annotations": self.truth[split]}
                write_coco(dataset_root / split / TRUTH_ANNOTATION_FILE, truth_coco)


def _crack_record(annotation: CrackAnnotation) -> dict:
    record = dict(annotation.record)
    if annotation.kind == "polygon":
        record["segmentation"] = annotation.polygons
    elif annotation.kind == "rle":
        record["segmentation"] = annotation.rle
    else:
        record["segmentation"] = annotation.uncompressed_rle
    return record


def choose_crack_segmentation_kinds(writer: CocoCollector) -> None:
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

