"""Box prompts for SAM: the config fields, the source interface, and the source a config names.

Box sources (config field ``boxes``; the prompt is mapped to a class by the same
:class:`~drywallqa.data.prompts.PromptConfig` as training):

- ``coco:RESULTS.json``: a detector's COCO results (``image_id``, ``category_id``, ``bbox`` xywh px,
  ``score``); ``box_images`` names the COCO annotation file they refer to.
- ``yolo:LABELS_DIR``: a detector's YOLO txt files (``cls cx cy w h [score]``); ``box_images`` is
  the images folder (default ``LABELS_DIR/../images``), ``box_classes`` the names by id (default
  from a nearby ``data.yaml``).
- ``detector:ID_OR_DIR``: a transformers zero-shot detector (Grounding DINO, OWL-ViT), queried
  with ``detector_queries`` (default: the class name).
- ``model:SPEC``: one box per connected component of a drywallqa model's mask.
- ``annotations:DATASET``: the dataset's annotated boxes: **ground truth**, an upper bound, never
  a result.
- ``full-image``: one box covering the image (a no-detector baseline).

The file sources (``coco``, ``yolo``, ``annotations``) live in :mod:`drywallqa.models.box_files`,
the model-driven ones (``detector``, ``model``) in :mod:`drywallqa.models.box_detectors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError

BOX_SOURCE_KINDS = ("coco", "yolo", "detector", "model", "annotations", "full-image")


@dataclass
class BoxSourceConfig:
    """Config fields of box prompts, shared by ``two-stage`` and ``textsam`` (see the module docstring).

    Attributes:
        boxes: Source spec: ``coco:FILE``, ``yolo:DIR``, ``detector:ID_OR_DIR``, ``model:SPEC``,
            ``annotations:DATASET``, ``full-image``; None for no boxes.
        box_images: For ``coco``: the COCO annotation file the results refer to (image ids,
            file names, categories). For ``yolo``: the images folder.
        box_classes: For ``yolo``: class names by id (default: ``names`` of a ``data.yaml``
            next to or above the labels folder).
        box_score_threshold: Boxes scoring below this are dropped (detector and file sources).
        max_boxes: At most this many boxes per image and prompt, highest scores first.
        prompts: Prompt config YAML mapping prompts to classes (default: the built-in one).
        detector_queries: Class -> text query for ``detector`` (default: the class name, e.g.
            ``taping area``).
    """

    boxes: str | None = None
    box_images: str | None = None
    box_classes: tuple[str, ...] = ()
    box_score_threshold: float = 0.3
    max_boxes: int = 8
    prompts: str | None = None
    detector_queries: dict[str, str] | None = None

    def check_box_fields(self) -> None:
        """Validate the box fields (called from the model configs' ``__post_init__``)."""
        if self.boxes is not None:
            kind = self.boxes.split(":", 1)[0]
            if kind not in BOX_SOURCE_KINDS:
                raise ConfigError(
                    f"unknown box source {self.boxes!r}; expected one of: coco:FILE, yolo:DIR, detector:ID_OR_DIR, "
                    "model:SPEC, annotations:DATASET, full-image"
                )
            if kind != "full-image" and not self.boxes.partition(":")[2]:
                raise ConfigError(f"box source {self.boxes!r} needs a value after '{kind}:'")
            if kind == "coco" and not self.box_images:
                raise ConfigError(
                    "boxes=coco:RESULTS.json needs box_images=ANNOTATIONS.json, the COCO file the results refer to"
                )
        if not 0.0 <= self.box_score_threshold <= 1.0:
            raise ConfigError(f"box_score_threshold must be in [0, 1], got {self.box_score_threshold}")
        if self.max_boxes < 1:
            raise ConfigError(f"max_boxes must be >= 1, got {self.max_boxes}")


@dataclass
class ImageBoxes:
    """The boxes of one image for one class.

    Attributes:
        boxes: ``(K, 4)`` float32 xyxy, normalised to ``[0, 1]`` by the image's width and height.
        scores: ``(K,)`` float32 in ``[0, 1]`` (1 for annotations).
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"got {len(self.boxes)} boxes but {len(self.scores)} scores")

    @classmethod
    def empty(cls) -> ImageBoxes:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def top(self, threshold: float, limit: int) -> ImageBoxes:
        """Boxes scoring at least ``threshold``, the ``limit`` best."""
        keep = np.flatnonzero(self.scores >= threshold)
        keep = keep[np.argsort(-self.scores[keep], kind="stable")][:limit]
        return ImageBoxes(self.boxes[keep].clip(0.0, 1.0), self.scores[keep])


class BoxSource:
    """Gives each image the boxes of the class its prompt names.

    Subclasses implement :meth:`image_boxes`.

    Attributes:
        spec: The ``boxes`` value it was built from, for reports.
        uses_ground_truth: The boxes are annotations: scores measured with them are an upper bound.
        exportable: :meth:`boxes_tensor` is made of tensor operations only.
    """

    uses_ground_truth: bool = False
    exportable: ClassVar[bool] = False

    def __init__(self, spec: str, score_threshold: float = 0.3, max_boxes: int = 8):
        self.spec = spec
        self.score_threshold = score_threshold
        self.max_boxes = max_boxes

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        """Boxes per image.

        Args:
            images: float ``(B, 3, H, W)`` RGB in ``[0, 1]`` (the model input).
            classes: The class each image's prompt names (None: no class, no boxes).
        """
        raise NotImplementedError

    def boxes_tensor(self, images: Tensor, classes: list[str | None]) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`image_boxes` packed into tensors, padded to the most boxes in the batch.

        Returns:
            ``boxes`` ``(B, K, 4)`` normalised xyxy, ``scores`` ``(B, K)``, ``valid`` ``(B, K)`` bool.
        """
        found = [b.top(self.score_threshold, self.max_boxes) for b in self.image_boxes(images, classes)]
        count = max([len(b.boxes) for b in found] + [0])
        boxes = images.new_zeros(len(found), count, 4)
        scores = images.new_zeros(len(found), count)
        valid = torch.zeros(len(found), count, dtype=torch.bool, device=images.device)
        for row, image_boxes in enumerate(found):
            n = len(image_boxes.boxes)
            boxes[row, :n] = torch.from_numpy(image_boxes.boxes).to(boxes)
            scores[row, :n] = torch.from_numpy(image_boxes.scores).to(scores)
            valid[row, :n] = True
        return boxes, scores, valid

    @property
    def description(self) -> str:
        """One line for reports."""
        suffix = " (ground-truth boxes: scores are an upper bound, not a result)" if self.uses_ground_truth else ""
        return f"{self.spec}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class FullImageBoxes(BoxSource):
    """One box covering the whole image, for every prompt: SAM without a detector (a baseline)."""

    exportable = True

    def boxes_tensor(self, images: Tensor, classes: list[str | None] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        batch = images.shape[0]
        boxes = images.new_tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 4).expand(batch, 1, 4)
        scores = images.new_ones(1, 1).expand(batch, 1)
        return boxes, scores, torch.ones_like(scores, dtype=torch.bool)

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        return [ImageBoxes(np.array([[0, 0, 1, 1]]), np.ones(1)) for _ in range(images.shape[0])]


def build_box_source(config: BoxSourceConfig, prompt_config: PromptConfig) -> BoxSource | None:
    """The :class:`BoxSource` a config's ``boxes`` field names, or None."""
    # The concrete sources build on the classes above, so they are imported here, not at the top.
    from drywallqa.models.box_detectors import DetectorBoxes, ModelMaskBoxes
    from drywallqa.models.box_files import annotation_boxes, coco_results_boxes, yolo_boxes

    if config.boxes is None:
        return None
    kind, _, value = config.boxes.partition(":")
    common: dict[str, Any] = {"score_threshold": config.box_score_threshold, "max_boxes": config.max_boxes}
    if kind == "full-image":
        return FullImageBoxes(config.boxes, **common)
    if kind == "coco":
        assert config.box_images is not None  # BoxSourceConfig requires it for coco
        return coco_results_boxes(value, config.box_images, prompt_config, **common)
    if kind == "yolo":
        return yolo_boxes(value, config.box_images, tuple(config.box_classes), prompt_config, **common)
    if kind == "annotations":
        return annotation_boxes(value, **common)
    if kind == "detector":
        queries = {name: name.replace("_", " ") for name in prompt_config.classes}
        queries.update(config.detector_queries or {})
        return DetectorBoxes(config.boxes, value, queries, **common)
    if kind == "model":
        return ModelMaskBoxes(config.boxes, value, prompt_config, **common)
    raise ConfigError(f"unknown box source {config.boxes!r}")
