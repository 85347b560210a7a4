"""What a prediction is scored against: annotated shapes, or filled boxes — never pseudo-masks.

Each prompt class gets one *target kind* for a whole evaluation:

- ``"mask"``: the class's annotations carry annotated shapes (polygons or RLE from the source
  annotation file). Truth is their union; an annotation without a shape contributes its filled
  box (the cracks export has a few of those).
- ``"box"``: the class is box-only (e.g. the taping-area data). Truth is the union of the filled
  boxes, the target published taping-area results were scored against, so numbers compare.

A shape produced by a pseudo-mask method is never truth: scoring a model against the masks it
(or a sibling method) was trained on measures agreement with the pseudo-labeller, not with the
annotators. An annotation counts as a pseudo-mask when it says so with a true ``is_pseudo``
attribute; such annotations contribute their filled box only, and a class whose shapes are all
pseudo-masks is scored as ``"box"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np

from drywallqa.data.core import Annotation, Sample
from drywallqa.data.masks import boxes_to_mask
from drywallqa.errors import ConfigError

TargetKind = Literal["mask", "box"]
TARGET_KINDS = ("mask", "box")


def is_pseudo_mask(annotation: Annotation) -> bool:
    """True when the annotation's shape was generated (pseudo-mask), not drawn by an annotator."""
    return bool(getattr(annotation, "is_pseudo", False))


def has_annotated_shape(annotation: Annotation) -> bool:
    """True when the annotation carries a shape from the original annotations (polygon or RLE)."""
    return annotation.has_mask and not is_pseudo_mask(annotation)


def target_kind(samples: Iterable[Sample], class_name: str) -> TargetKind:
    """``"mask"`` if any annotation of ``class_name`` has an annotated shape, else ``"box"``."""
    for sample in samples:
        for ann in sample.annotations:
            if ann.class_name == class_name and has_annotated_shape(ann):
                return "mask"
    return "box"


def resolve_target_kinds(
    truth: str | Mapping[str, str], samples_by_class: Mapping[str, list[Sample]]
) -> dict[str, TargetKind]:
    """Target kind per class from the ``truth`` option of :func:`drywallqa.evaluation.evaluate`.

    Args:
        truth: ``"auto"`` (per class, see :func:`target_kind`), ``"mask"`` or ``"box"`` for every
            class, or ``{class_name: "auto" | "mask" | "box"}`` (missing classes are ``"auto"``).
        samples_by_class: The evaluated samples of each class.

    Raises:
        ConfigError: For an unknown kind, or ``"mask"`` for a class without annotated shapes.
    """
    per_class = dict(truth) if isinstance(truth, Mapping) else {name: truth for name in samples_by_class}
    kinds: dict[str, TargetKind] = {}
    for name, samples in samples_by_class.items():
        wanted = per_class.get(name, "auto")
        auto = target_kind(samples, name)
        if wanted == "auto":
            kinds[name] = auto
        elif wanted == "box":
            kinds[name] = "box"
        elif wanted == "mask":
            if auto != "mask":
                raise ConfigError(
                    f"truth='mask' for class {name!r}, but none of its annotations has an annotated shape "
                    "(box-only or pseudo-masks); use truth='box' or 'auto'"
                )
            kinds[name] = "mask"
        else:
            raise ConfigError(f"truth for class {name!r} must be 'auto', 'mask' or 'box', got {wanted!r}")
    return kinds


def truth_mask(sample: Sample, class_name: str, kind: TargetKind) -> np.ndarray:
    """The ``(H, W)`` bool truth of ``class_name`` in ``sample`` for a target kind.

    Empty when the class is absent from the image (a negative for that prompt).
    """
    if kind == "box":
        return sample.box_mask(class_name)
    annotations = [a for a in sample.annotations if a.class_name == class_name]
    if not any(is_pseudo_mask(a) for a in annotations):
        return sample.mask(class_name)
    out = np.zeros((sample.height, sample.width), dtype=bool)
    for ann in annotations:
        if has_annotated_shape(ann):
            out |= ann.to_mask(sample.height, sample.width)
        else:
            out |= boxes_to_mask(np.array([ann.box]), sample.height, sample.width)
    return out
