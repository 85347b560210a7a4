"""Source groups a scored split shares with the model's training images: :class:`TrainingOverlap`.

Roboflow exports put every variant of one photo (flip, crop, rotation) in one source group
(:func:`drywallqa.data.groups.source_group`), and the publisher's splits are not group-clean: a
model trained on published train and scored on published valid is partly scored on variants of
photos it learned from. :func:`training_overlap` counts those groups, from what the model's
training record says it trained on (:class:`TrainingGroups`, built by the caller, e.g. with
:func:`drywallqa.trainsets.training_groups`); when the record says nothing, the overlap is
*unknown*, never 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from drywallqa.data.core import Sample

#: Shared groups named in a report (the JSON holds the count of all of them).
EXAMPLES = 5


@dataclass(frozen=True)
class TrainingGroups:
    """The source groups behind a model, as its training record gives them.

    Attributes:
        source: Where they come from (e.g. ``MODEL/training.json``), or why they are unknown.
        train: ``(dataset, group)`` of the images the model was trained on; None when unknown.
        selection: ``(dataset, group)`` of the validation images that chose its checkpoint (and
            calibrated thresholds); None when unknown.

    Example:
        >>> TrainingGroups.unknown("an .onnx file records no training data").known
        False
    """

    source: str
    train: Collection[tuple[str, str]] | None = None
    selection: Collection[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("TrainingGroups.source must say where the groups come from, or why they are unknown")
        if self.train is None and self.selection is not None:
            raise ValueError("TrainingGroups: selection groups without train groups")
        for name in ("train", "selection"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, frozenset((str(d), str(g)) for d, g in value))

    @classmethod
    def unknown(cls, reason: str) -> TrainingGroups:
        """Groups a model's record does not give, with the reason."""
        return cls(source=reason)

    @property
    def known(self) -> bool:
        return self.train is not None


@dataclass(frozen=True)
class TrainingOverlap:
    """Scored source groups that the model trained on (the ``leakage`` entry of a report).

    Attributes:
        known: Whether the model's training images are known; when False every count below
            that needs them is None.
        source: Where the training groups come from, or why they are unknown.
        scored_groups: Distinct ``(dataset, group)`` among the scored images.
        scored_images: Distinct images scored.
        shared_groups: Scored groups with images the model was trained on.
        images_in_shared_groups: Scored images in those groups.
        by_dataset: ``shared_groups`` per dataset.
        examples: The first shared groups, as ``dataset/group`` (sorted).
        selection_shared_groups: Scored groups (other than the shared ones) with images among
            the validation images that chose the model's checkpoint and thresholds; None when
            the record does not say.
    """

    known: bool
    source: str
    scored_groups: int
    scored_images: int
    shared_groups: int | None = None
    images_in_shared_groups: int | None = None
    by_dataset: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    selection_shared_groups: int | None = None

    def __post_init__(self) -> None:
        if self.known and None in (self.shared_groups, self.images_in_shared_groups):
            raise ValueError("TrainingOverlap: a known overlap needs shared_groups and images_in_shared_groups")
        counts = (self.shared_groups, self.images_in_shared_groups, self.selection_shared_groups)
        if not self.known and (any(c is not None for c in counts) or self.by_dataset or self.examples):
            raise ValueError("TrainingOverlap: an unknown overlap has no counts")

    def text(self) -> str:
        """One line for the report header, e.g. ``63 of 86 scored source groups (152 of 202 images) ...``."""
        if not self.known:
            return f"unknown: {self.source}"
        selection = (f"; {self.selection_shared_groups} other group(s) are among the validation images that chose its "
                     "checkpoint" if self.selection_shared_groups else "")
        if self.shared_groups:
            per_dataset = ", ".join(f"{name} {n}" for name, n in self.by_dataset.items())
            more = ", ..." if self.shared_groups > len(self.examples) else ""
            found = (f"{self.shared_groups} of {self.scored_groups} scored source groups ({self.images_in_shared_groups} "
                     f"of {self.scored_images} images) have images the model was trained on ({per_dataset}), e.g. "
                     f"{', '.join(self.examples)}{more}")
        else:
            found = f"none of the {self.scored_groups} scored source groups has images the model was trained on"
        return f"{found}{selection}; training set: {self.source}"


def training_overlap(samples: Iterable[Sample], training: TrainingGroups | None) -> TrainingOverlap:
    """The scored samples' source groups that the model trained on.

    Args:
        samples: The scored samples (an image scored for several classes may appear once per class).
        training: The model's training groups; None when the caller has none (the overlap is unknown).
    """
    training = training or TrainingGroups.unknown("no training record given to evaluate()")
    images = {str(s.image_path): (s.dataset, s.group) for s in samples}
    groups = set(images.values())
    if training.train is None:
        return TrainingOverlap(False, training.source, len(groups), len(images))
    shared = sorted(groups.intersection(training.train))
    shared_set = set(shared)
    return TrainingOverlap(
        known=True,
        source=training.source,
        scored_groups=len(groups),
        scored_images=len(images),
        shared_groups=len(shared),
        images_in_shared_groups=sum(key in shared_set for key in images.values()),
        by_dataset=dict(sorted(Counter(dataset for dataset, _ in shared).items())),
        examples=[f"{dataset}/{group}" for dataset, group in shared[:EXAMPLES]],
        selection_shared_groups=(
            None if training.selection is None else len((groups - shared_set).intersection(training.selection))
        ),
    )
