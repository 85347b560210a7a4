"""A built training set: :class:`TrainRecord` (one item) and :class:`TrainSet` (all of them).

A set knows its splits, counts, leaks and how to load an item's image and target; it is made by
:func:`drywallqa.trainsets.build.build_trainset`, whose docstring gives the order of the steps
that keep it leak-free.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.core import Sample
from drywallqa.data.groups import shared_groups
from drywallqa.data.prompts import PromptClass, PromptConfig
from drywallqa.errors import DataError
from drywallqa.trainsets.config import TrainSetConfig

TRAIN = "train"
VALID = "valid"
PUBLISHED_PREFIX = "published_"

KINDS = ("positive", "background", "negative")
"""Record kinds: an annotated image with its own class's prompt; an image without annotations
with its dataset's class prompt (empty target); a cross-prompt negative (empty target)."""


@dataclass
class TrainRecord:
    """One item of a training set: an image, the class whose mask is the target, and provenance.

    Attributes:
        index: Position in :attr:`TrainSet.records`.
        image: Path of the source image file.
        class_name: Prompt class of the item; the target is this class's mask in the image.
        prompts: Prompts of the item. In ``train``: the canonical prompt then the training
            paraphrases (one is sampled per step). In other splits: the canonical prompt then the
            held-out paraphrases (for evaluating robustness to wording).
        split: Split of the built set (``train``, ``valid``, ``test``, ``published_valid``, ...).
        dataset: Name of the dataset the image comes from.
        group: Source group of the image (variants of one photo share it).
        published_split: The split the dataset's publisher put the image in.
        kind: ``positive``, ``background`` or ``negative`` (see :data:`KINDS`).
        mask_source: Where the target comes from: ``annotation`` (true shapes), ``box`` (filled
            boxes), the folder of a pseudo-mask dataset, or ``empty``.
        augmented_from: For an augmented copy, the index of the original record; else None.
        copy_index: ``k`` for the ``k``-th copy of an original (from 1); 0 for originals.
        negative_of: For a cross-prompt negative, the index of the record whose image it uses.
        sample: The source sample (annotations, size).
        target_sample: The pseudo-mask sample giving the target, when ``mask_source`` is a folder.
    """

    index: int
    image: Path
    class_name: str
    prompts: tuple[str, ...]
    split: str
    dataset: str
    group: str
    published_split: str
    kind: str
    mask_source: str
    augmented_from: int | None = None
    copy_index: int = 0
    negative_of: int | None = None
    sample: Sample | None = field(default=None, repr=False, compare=False)
    target_sample: Sample | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.prompts:
            raise ValueError(f"record {self.index} ({self.image}) has no prompt")

    @property
    def group_key(self) -> str:
        """``dataset/group``: the unit that must stay inside one split."""
        return f"{self.dataset}/{self.group}"

    @property
    def is_copy(self) -> bool:
        """True for an augmented copy added by class balancing."""
        return self.augmented_from is not None

    @property
    def is_negative(self) -> bool:
        """True for a cross-prompt negative."""
        return self.kind == "negative"

    def to_dict(self) -> dict:
        """Provenance as a flat JSON-ready dict (no sample objects)."""
        return {
            "index": self.index, "image": str(self.image), "class": self.class_name,
            "prompts": list(self.prompts), "split": self.split, "dataset": self.dataset, "group": self.group,
            "published_split": self.published_split, "kind": self.kind, "mask_source": self.mask_source,
            "augmented_from": self.augmented_from, "copy_index": self.copy_index, "negative_of": self.negative_of,
        }


@dataclass
class TrainSet:
    """A built training set: records of every split plus what the build found.

    Build one with :func:`build_trainset`. Use :meth:`torch_dataset` for training,
    :meth:`check_leakage` to prove the splits are clean, and
    :func:`drywallqa.trainsets.materialize` to write it to disk.

    Attributes:
        config: The config it was built from.
        records: Every item of every split (originals, augmented copies, negatives).
        prompt_config: Prompt classes used to resolve prompts.
        published_leaks: Groups the publishers put in more than one published split:
            ``{"dataset/group": [published splits]}``.
        dropped_groups: Groups dropped from published train (``drop_leaked_from_train``).
        dropped_images: Images dropped with them.
        notes: Things the build could not do as configured (e.g. no negatives with one class).
    """

    config: TrainSetConfig
    records: list[TrainRecord]
    prompt_config: PromptConfig
    published_leaks: dict[str, list[str]] = field(default_factory=dict)
    dropped_groups: list[str] = field(default_factory=list)
    dropped_images: int = 0
    notes: list[str] = field(default_factory=list)
    # Decoded images by file (see cache_images); DataLoader workers forked after caching share them.
    _images: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    # -- views -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def splits(self) -> dict[str, int]:
        """Items per split, in the order train, valid, test, then others."""
        counts = Counter(r.split for r in self.records)
        return {s: counts[s] for s in _split_order(counts)}

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(sorted({r.class_name for r in self.records}))

    def split(self, name: str) -> list[TrainRecord]:
        """Records of one split; raises :class:`DataError` listing the splits if it has none."""
        records = [r for r in self.records if r.split == name]
        if not records:
            raise DataError(f"training set has no split {name!r}; it has {list(self.splits)}")
        return records

    def split_of_images(self) -> dict[Path, str]:
        """``{resolved image path: split}`` for every original image in the set.

        This is how evaluation reuses a training run's grouping: ``drywallqa evaluate
        --splits-from RUN/model --split test`` scores exactly the source groups held out of training.
        """
        return {Path(r.image).resolve(): r.split for r in self.records if not r.is_copy and not r.is_negative}

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: {class: {"original": n, "copies": n, "negatives": n, "items": n}}}``.

        ``original`` counts positives and backgrounds, ``copies`` augmented copies, ``negatives``
        cross-prompt negatives *using that class's prompt*; ``items`` is their sum.
        """
        out: dict[str, dict[str, dict[str, int]]] = {}
        for split in self.splits:
            per_class: dict[str, dict[str, int]] = {}
            for name in self.class_names:
                per_class[name] = {"original": 0, "copies": 0, "negatives": 0, "items": 0}
            for r in self.records:
                if r.split != split:
                    continue
                column = "negatives" if r.is_negative else "copies" if r.is_copy else "original"
                per_class[r.class_name][column] += 1
                per_class[r.class_name]["items"] += 1
            out[split] = per_class
        return out

    def class_ratio(self, split: str = TRAIN) -> float:
        """Smallest over largest class count in ``split``, counting originals and copies (not negatives)."""
        counts = Counter(r.class_name for r in self.split(split) if not r.is_negative)
        return min(counts.values()) / max(counts.values()) if counts else 1.0

    def prompt_class(self, class_name: str) -> PromptClass:
        """Prompts of a class (canonical, training paraphrases, held-out paraphrases)."""
        return self.prompt_config.resolve(class_name)

    # -- checks ----------------------------------------------------------------------------------
    def check_leakage(self) -> dict[str, list[str]]:
        """Source groups that cross splits: ``{"dataset/group": [splits]}``, empty when clean.

        A group is reported when its images sit in two splits, when an augmented copy is in
        another split than its original or outside ``train``, or when a negative is in another
        split than the record whose image it uses.
        """
        by_split: dict[str, set[str]] = defaultdict(set)
        for r in self.records:
            by_split[r.split].add(r.group_key)
        offending = shared_groups(by_split)
        for r in self.records:
            source = r.augmented_from if r.is_copy else r.negative_of
            if source is None:
                continue
            splits = {r.split, self.records[source].split}
            if r.is_copy:
                splits.add(TRAIN)  # a copy anywhere but train is itself a leak
            if len(splits) > 1:
                offending[r.group_key] = sorted(set(offending.get(r.group_key, [])) | splits)
        return dict(sorted(offending.items()))

    def check_line(self, limit: int = 5) -> str:
        """One line stating the result of :meth:`check_leakage`, for logs and the CLI."""
        leaks = self.check_leakage()
        copies = sum(r.is_copy for r in self.records)
        groups = len({r.group_key for r in self.records})
        if not leaks:
            return (
                f"check: OK - no source group or augmented copy in more than one split "
                f"({groups} groups, {copies} copies checked)"
            )
        shown = ", ".join(f"{g} {s}" for g, s in list(leaks.items())[:limit])
        more = f", ... {len(leaks) - limit} more" if len(leaks) > limit else ""
        hint = " (rerun with --drop-leaked-from-train to drop them from train)" if self.config.keep_splits else ""
        return f"check: LEAK - {len(leaks)} of {groups} source groups in more than one split: {shown}{more}{hint}"

    # -- data ------------------------------------------------------------------------------------
    def load_image(self, record: TrainRecord) -> np.ndarray:
        """The record's image, RGB ``uint8`` ``(H, W, 3)``: from the cache when :meth:`cache_images` ran."""
        from drywallqa.trainsets.items import read_rgb

        cached = self._images.get(str(record.image))
        # A copy (a fraction of a millisecond): augmentations must never alter the cached pixels.
        return cached.copy() if cached is not None else read_rgb(record.image)

    def cache_images(self, splits: Sequence[str] | None = None, workers: int | None = None) -> int:
        """Decode the images of ``splits`` (all by default) once and keep them in memory.

        Training on a GPU decodes each photo hundreds of times otherwise; with the cache the
        loader workers only augment. Costs ``H * W * 3`` bytes per image (1.2 MB at 640x640).

        Args:
            splits: Splits whose images to cache; every split if None.
            workers: Decoding threads (OpenCV releases the GIL); the CPU count by default.

        Returns:
            Number of images now in the cache.

        Raises:
            DataError: Naming the first image that cannot be read.
        """
        import os
        from concurrent.futures import ThreadPoolExecutor

        from drywallqa.trainsets.items import read_rgb

        wanted = {str(r.image) for r in self.records if splits is None or r.split in splits} - set(self._images)
        paths = sorted(wanted)
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for path, image in zip(paths, pool.map(read_rgb, paths)):
                self._images[path] = image
        return len(self._images)

    def load_target(self, record: TrainRecord) -> np.ndarray:
        """The record's target at the image's own size, ``(H, W)`` bool (before augmentation)."""
        sample = record.sample
        if sample is None:
            raise DataError(f"record {record.index} ({record.image}) has no sample to read a target from")
        if record.kind != "positive":
            return np.zeros((sample.height, sample.width), dtype=bool)
        if record.target_sample is not None:
            target = record.target_sample
            if (target.height, target.width) != (sample.height, sample.width):
                raise DataError(
                    f"{record.mask_source}: pseudo-mask of {record.image} is {target.width}x{target.height}, "
                    f"the image is {sample.width}x{sample.height}"
                )
            return target.mask(record.class_name)
        return sample.mask(record.class_name)

    def augmentation(self):
        """The training augmentation pipeline (``A.Compose``) built from the config."""
        from drywallqa.trainsets.augment import build_augmentation

        return build_augmentation(self.config.augmentation)

    def torch_dataset(self, split: str, **kwargs):
        """A torch ``Dataset`` over one split; see :class:`drywallqa.trainsets.TrainSetDataset`."""
        from drywallqa.trainsets.torch_dataset import TrainSetDataset

        return TrainSetDataset(self, split, **kwargs)

    def to_pandas(self):
        """Records as a pandas DataFrame (one row per item, the :meth:`TrainRecord.to_dict` fields)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise DataError("TrainSet.to_pandas needs pandas: pip install pandas") from exc
        return pd.DataFrame([r.to_dict() for r in self.records])

    def __repr__(self) -> str:
        copies = sum(r.is_copy for r in self.records)
        negatives = sum(r.is_negative for r in self.records)
        return (
            f"TrainSet({len(self)} items, splits={self.splits}, classes={list(self.class_names)}, "
            f"{copies} augmented copies, {negatives} negatives, {len(self.check_leakage())} leaked groups)"
        )


def _split_order(names) -> list[str]:
    rank = {TRAIN: 0, VALID: 1, "test": 2}
    return sorted(names, key=lambda s: (rank.get(s, 3), s))
