"""The one in-memory representation of every dataset: :class:`Annotation`, :class:`Sample`,
:class:`AnnotatedDataset`.

Every importer (Roboflow COCO, YOLO, mask folders) produces these, and every later stage
(pseudo-masks, training sets, evaluation) consumes them, so no stage knows about file formats.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.masks import boxes_to_mask, polygons_to_mask, rle_to_mask
from drywallqa.errors import DataError, IssueLog
from drywallqa.files import read_image

SPLIT_ALIASES = {"val": "valid", "validation": "valid"}


def canonical_split(name: str) -> str:
    """Roboflow calls the validation split ``valid``; accept ``val`` and ``validation`` too."""
    return SPLIT_ALIASES.get(name.lower(), name.lower())


@dataclass(frozen=True)
class Annotation:
    """One annotated object: its class, its box, and its true shape when the dataset has one.

    Attributes:
        class_name: Prompt class (e.g. ``"crack"``), resolved from the category name.
        box: ``(x1, y1, x2, y2)`` in pixels, clipped to the image, positive area.
        polygons: Outlines as ``(N, 2)`` float arrays of ``(x, y)`` pixel coordinates, ``N >= 3``.
        rle: COCO RLE dict (compressed or uncompressed counts), or None.
        category: The category name as written in the source file.
        source_id: The annotation's id in its source file, for error messages and provenance.
        is_pseudo: The shape was generated from the box (``drywallqa masks``), not drawn by a
            person: training may learn from it, evaluation never scores against it.
    """

    class_name: str
    box: tuple[float, float, float, float]
    polygons: tuple[np.ndarray, ...] = ()
    rle: dict | None = None
    category: str = ""
    source_id: str = ""
    is_pseudo: bool = False

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"box must have positive area as (x1, y1, x2, y2), got {self.box}")
        for poly in self.polygons:
            if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
                raise ValueError(f"polygon must have shape (N>=3, 2), got {poly.shape}")

    @property
    def has_mask(self) -> bool:
        """True when the annotation carries a true shape (polygon or RLE), not just a box."""
        return bool(self.polygons) or self.rle is not None

    def to_mask(self, height: int, width: int) -> np.ndarray:
        """Rasterise the true shape (see :mod:`drywallqa.data.masks`), or the filled box if none."""
        if self.rle is not None:
            mask = rle_to_mask(self.rle, height, width)
            return mask | polygons_to_mask(self.polygons, height, width) if self.polygons else mask
        if self.polygons:
            return polygons_to_mask(self.polygons, height, width)
        return boxes_to_mask(np.array([self.box]), height, width)

    def __repr__(self) -> str:
        kind = "rle" if self.rle is not None else f"{len(self.polygons)} polygon(s)" if self.polygons else "box only"
        kind = f"pseudo {kind}" if self.is_pseudo else kind
        box = ", ".join(f"{v:.0f}" for v in self.box)
        return f"Annotation({self.class_name!r}, box=[{box}], {kind})"


@dataclass
class Sample:
    """One image with its annotations.

    Attributes:
        image_path: Path of the image file.
        width: Image width in pixels.
        height: Image height in pixels.
        split: ``train``, ``valid``, ``test`` or another split name; ``""`` if the source has none.
        dataset: Name of the dataset the image belongs to (its folder name).
        group: Source group: variants of one photo (flips, crops, rotations) share it.
        annotations: Annotated objects; empty for a background image.
        image_id: The image's id in its source file.
    """

    image_path: Path
    width: int
    height: int
    split: str
    dataset: str
    group: str
    annotations: tuple[Annotation, ...] = ()
    image_id: str = ""

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.annotations = tuple(self.annotations)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height} for {self.image_path}")

    @property
    def classes(self) -> tuple[str, ...]:
        """Sorted prompt classes present in the image."""
        return tuple(sorted({a.class_name for a in self.annotations}))

    @property
    def has_true_mask(self) -> bool:
        """True when every annotation has a shape, so :meth:`mask` is exact (vacuously for none)."""
        return all(a.has_mask for a in self.annotations)

    @property
    def is_box_only(self) -> bool:
        """True when at least one annotation is a box without a shape."""
        return any(not a.has_mask for a in self.annotations)

    def boxes(self, class_name: str | None = None) -> np.ndarray:
        """``(N, 4)`` float32 xyxy boxes, optionally of one class only."""
        boxes = [a.box for a in self.annotations if class_name is None or a.class_name == class_name]
        return np.array(boxes, dtype=np.float32).reshape(-1, 4)

    def mask(self, class_name: str | None = None) -> np.ndarray:
        """Union of the annotations' masks as ``(H, W)`` bool (box-only annotations fill their box).

        Args:
            class_name: Only annotations of this class; all classes if None. A class absent from
                the image gives an empty mask.
        """
        out = np.zeros((self.height, self.width), dtype=bool)
        for ann in self.annotations:
            if class_name is None or ann.class_name == class_name:
                out |= ann.to_mask(self.height, self.width)
        return out

    def box_mask(self, class_name: str | None = None) -> np.ndarray:
        """Filled boxes as ``(H, W)`` bool: the target published taping-area results used."""
        return boxes_to_mask(self.boxes(class_name), self.height, self.width)

    def load_image(self) -> np.ndarray:
        """The image as RGB ``uint8`` ``(H, W, 3)``; raises :class:`DataError` naming the file."""
        image = read_image(self.image_path)
        if image.shape[:2] != (self.height, self.width):
            raise DataError(
                f"{self.image_path}: image is {image.shape[1]}x{image.shape[0]} but its annotation says "
                f"{self.width}x{self.height}"
            )
        return image

    def __repr__(self) -> str:
        kind = "box-only" if self.is_box_only else "masked" if self.annotations else "background"
        return (
            f"Sample({self.image_path.name!r}, {self.width}x{self.height}, split={self.split!r}, "
            f"group={self.group!r}, {len(self.annotations)} annotation(s) {list(self.classes)}, {kind})"
        )


@dataclass
class AnnotatedDataset:
    """Samples of one dataset (all its splits), plus what was skipped while loading.

    Build one with :meth:`load` (format detected) or a ``from_*`` importer.

    Example:
        >>> ds = AnnotatedDataset.load("../shared/data/cracks")  # doctest: +SKIP
        >>> ds.split("valid")                                     # doctest: +SKIP
        AnnotatedDataset('cracks', 201 images, splits={'valid': 201}, classes=['crack'])
    """

    name: str
    samples: list[Sample] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    root: Path | None = None
    issues: IssueLog = field(default_factory=IssueLog)
    format: str = ""

    def __post_init__(self) -> None:
        if not self.class_names:
            self.class_names = tuple(sorted({c for s in self.samples for c in s.classes}))

    # -- importers -------------------------------------------------------------------------------
    @classmethod
    def from_coco(cls, path: str | os.PathLike, **kwargs) -> AnnotatedDataset:
        """Roboflow/COCO export: a root of split folders, one split folder, or one json file.

        See :func:`drywallqa.data.formats.coco.load_coco` for the arguments.
        """
        from drywallqa.data.formats.coco import load_coco

        return load_coco(path, **kwargs)

    @classmethod
    def from_yolo(cls, path: str | os.PathLike, **kwargs) -> AnnotatedDataset:
        """YOLO txt export with ``data.yaml`` (boxes and polygons)."""
        from drywallqa.data.formats.yolo import load_yolo

        return load_yolo(path, **kwargs)

    @classmethod
    def from_mask_folder(cls, path: str | os.PathLike, **kwargs) -> AnnotatedDataset:
        """Images with a parallel folder of mask PNGs."""
        from drywallqa.data.formats.mask_folder import load_mask_folder

        return load_mask_folder(path, **kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> AnnotatedDataset:
        """Detect the format of ``path`` and load it (see :func:`drywallqa.data.formats.detect_format`)."""
        from drywallqa.data.formats import detect_format

        fmt = detect_format(path)
        loader = {"coco": cls.from_coco, "yolo": cls.from_yolo, "mask-folder": cls.from_mask_folder}[fmt]
        return loader(path, **kwargs)

    # -- collection protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def splits(self) -> dict[str, int]:
        """Images per split, in first-seen order."""
        return dict(Counter(s.split for s in self.samples))

    def split(self, name: str | Iterable[str]) -> AnnotatedDataset:
        """A view with only the samples of the given split(s)."""
        names = {canonical_split(name)} if isinstance(name, str) else {canonical_split(n) for n in name}
        missing = names - set(self.splits)
        if missing:
            raise DataError(
                f"dataset {self.name!r} has no split {sorted(missing)}; it has {sorted(self.splits)}"
            )
        return self.filter(lambda s: s.split in names)

    def filter(self, keep) -> AnnotatedDataset:
        """A dataset of the samples for which ``keep(sample)`` is true (same issues, classes)."""
        return AnnotatedDataset(
            self.name, [s for s in self.samples if keep(s)], self.class_names, self.root, self.issues, self.format
        )

    @staticmethod
    def merge(datasets: Iterable[AnnotatedDataset], name: str = "merged") -> AnnotatedDataset:
        """Concatenate datasets; samples keep their own ``dataset`` names."""
        datasets = list(datasets)
        issues = IssueLog(quiet=True)
        for ds in datasets:
            issues.extend(ds.issues)
        classes = tuple(sorted({c for ds in datasets for c in ds.class_names}))
        return AnnotatedDataset(name, [s for ds in datasets for s in ds.samples], classes, None, issues, "merged")

    def __repr__(self) -> str:
        return (
            f"AnnotatedDataset({self.name!r}, {len(self)} images, splits={self.splits}, "
            f"classes={list(self.class_names)}" + (f", {len(self.issues)} skipped" if len(self.issues) else "") + ")"
        )
