"""Building a leak-free training set: :class:`TrainRecord`, :class:`TrainSet`, :func:`build_trainset`.

Order of the steps, which is what keeps evaluation honest:

1. **Split by source group first.** Every variant of one photo (``dataset/group``) goes to exactly
   one split. Without ``keep_splits`` all images are pooled and split with the configured
   fractions; with it the published splits are respected (published train is split into
   ``train``/``valid`` by group, the other published splits are kept as ``published_<name>``) and
   groups the publisher put in two splits are reported, or dropped from train on request.
2. **Balance classes inside train only**, by adding augmented copies of minority-class items.
   A copy records the item it was made from, so :meth:`TrainSet.check_leakage` can prove that no
   copy sits in another split than its original.
3. **Add cross-prompt negatives** (an image of one class, another class's prompt, an empty
   target) from images of the same split, so a model has to read the prompt.

Cross-prompt negatives assume that an image from a dataset annotated only for class A shows no
instance of class B. That holds for the shipped data (crack close-ups vs. taped joints) but is an
assumption: set ``negative_rate: 0`` for datasets where it does not.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Sample
from drywallqa.data.groups import shared_groups, split_groups
from drywallqa.data.prompts import PromptClass, PromptConfig
from drywallqa.errors import ConfigError, DataError
from drywallqa.trainsets.config import BOX_TARGET, TrainSetConfig
from drywallqa.trainsets.sources import image_key, load_datasets, load_pseudo_masks

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


# -- building ------------------------------------------------------------------------------------
def build_trainset(
    config: TrainSetConfig | None = None, datasets: Sequence[AnnotatedDataset] | None = None
) -> TrainSet:
    """Combine datasets of several prompt classes into one training set without leakage.

    Args:
        config: What to build; the defaults if None.
        datasets: Already loaded datasets to use instead of ``config.datasets`` (their classes
            must have been resolved with the same prompt config).

    Returns:
        The :class:`TrainSet`. Nothing is read but annotations (and images when
        ``config.verify_images``); targets and augmentations are made when items are loaded.

    Raises:
        ConfigError: For a bad config (no dataset, missing pseudo-mask folder, ...).
        DataError: For unreadable datasets, or box-only samples missing from a pseudo-mask dataset.
    """
    from drywallqa.trainsets.synthetic import synthetic_datasets

    config = config or TrainSetConfig()
    prompt_config = PromptConfig.from_yaml(config.prompt_config) if config.prompt_config else PromptConfig.default()
    if datasets is None:
        datasets = load_datasets(config.datasets, prompt_config, config.verify_images)
    synthetic = synthetic_datasets(config.synthetic, prompt_config, config.verify_images)
    datasets = list(datasets) + synthetic
    train_only = set(config.train_only) | {ds.name for ds in synthetic}
    unknown = sorted(train_only - {ds.name for ds in datasets})
    if unknown:
        raise ConfigError(
            f"trainset config: train_only names {unknown[0]!r}, which is not a dataset here "
            f"(the datasets are: {', '.join(sorted(ds.name for ds in datasets))})"
        )
    # Sorted so the build depends on the files, not on the order a folder listing returned them.
    samples = sorted(
        ((s, ds) for ds in datasets for s in ds.samples), key=lambda p: (p[0].dataset, p[0].split, str(p[0].image_path))
    )
    by_published: dict[str, set[str]] = defaultdict(set)
    for s, _ in samples:
        if s.dataset not in train_only:
            by_published[s.split].add(_group_key(s))
    published_leaks = shared_groups(by_published)

    assigned, dropped_groups, dropped_images = _assign_splits(samples, published_leaks, config, train_only)
    builder = _RecordBuilder(config, prompt_config, train_only)
    for (sample, ds), split in zip(samples, assigned):
        if split is not None:
            builder.add_sample(sample, ds, split)
    builder.check_pseudo_masks()
    notes = builder.balance()
    notes += builder.add_negatives()
    return TrainSet(
        config=config, records=builder.records, prompt_config=prompt_config, published_leaks=published_leaks,
        dropped_groups=dropped_groups, dropped_images=dropped_images, notes=notes,
    )


def _group_key(sample: Sample) -> str:
    return f"{sample.dataset}/{sample.group}"


def _assign_splits(
    samples: list[tuple[Sample, AnnotatedDataset]], published_leaks: dict[str, list[str]], config: TrainSetConfig,
    train_only: set[str] = frozenset(),
) -> tuple[list[str | None], list[str], int]:
    """The split of every sample (None: dropped), the dropped groups and the dropped image count.

    Each dataset is split on its own (groups are keyed by dataset, so this cannot leak), which
    gives every split its share of every class instead of whatever a pooled shuffle lands on.
    Datasets in ``train_only`` go to train whole and take no part in the carving, so adding one
    leaves the split of every other dataset as it was.
    """
    carved = [(s, ds) for s, ds in samples if s.dataset not in train_only]
    assigned, dropped_groups, dropped_images = _carve(carved, published_leaks, config)
    of_carved = iter(assigned)
    splits = [TRAIN if s.dataset in train_only else next(of_carved) for s, _ in samples]
    return splits, dropped_groups, dropped_images


def _carve(
    samples: list[tuple[Sample, AnnotatedDataset]], published_leaks: dict[str, list[str]], config: TrainSetConfig
) -> tuple[list[str | None], list[str], int]:
    """:func:`_assign_splits` of the datasets that are carved."""
    def published(s: Sample) -> str:
        # Images of a dataset without split folders count as published train.
        return s.split or TRAIN

    if config.keep_splits:
        leaked_into_train = {g for g, splits in published_leaks.items() if TRAIN in splits or "" in splits}
        dropped = set(leaked_into_train) if config.drop_leaked_from_train else set()
        # The configured shares carve published train into train / valid (/ test): a test share
        # gives source groups held out of training and of model selection alike.
        total = sum(v for v in config.fractions.values() if v > 0)
        fractions = {name: share / total for name, share in config.fractions.items() if share > 0}
        to_split = [(s, ds) for s, ds in samples if published(s) == TRAIN and _group_key(s) not in dropped]
    else:
        dropped, fractions, to_split = set(), config.fractions, samples
    assignment: dict[str, str] = {}
    for dataset in sorted({s.dataset for s, _ in to_split}):
        sizes = Counter(_group_key(s) for s, _ in to_split if s.dataset == dataset)
        assignment.update(split_groups(sizes, fractions, config.seed))

    splits: list[str | None] = []
    dropped_images = 0
    for s, _ in samples:
        key = _group_key(s)
        if key in assignment and (not config.keep_splits or published(s) == TRAIN):
            splits.append(assignment[key])
        elif key in dropped and published(s) == TRAIN:
            splits.append(None)
            dropped_images += 1
        else:
            splits.append(PUBLISHED_PREFIX + published(s))
    return splits, sorted(dropped), dropped_images


class _RecordBuilder:
    """Accumulates records; one instance per build."""

    def __init__(self, config: TrainSetConfig, prompt_config: PromptConfig, train_only: set[str] = frozenset()):
        self.config = config
        self.prompt_config = prompt_config
        self.train_only = train_only
        self.records: list[TrainRecord] = []
        self.rng = np.random.default_rng(config.seed)
        self.pseudo: dict[str, dict[str, Sample]] = {
            name: load_pseudo_masks(source, prompt_config)
            for name, source in config.mask_sources.items()
            if source != BOX_TARGET
        }
        self.missing_pseudo: dict[str, list[Path]] = defaultdict(list)

    def prompts(self, class_name: str, split: str) -> tuple[str, ...]:
        pc = self.prompt_config.resolve(class_name)
        return pc.training_prompts if split == TRAIN else (pc.prompt, *pc.heldout)

    def add_sample(self, sample: Sample, dataset: AnnotatedDataset, split: str) -> None:
        # An image without annotations is an empty target for every class its dataset annotates.
        classes = sample.classes or dataset.class_names
        for class_name in classes:
            kind = "positive" if sample.classes else "background"
            mask_source, target_sample = self.mask_source(sample, class_name) if kind == "positive" else ("empty", None)
            self.records.append(
                TrainRecord(
                    index=len(self.records), image=sample.image_path, class_name=class_name,
                    prompts=self.prompts(class_name, split), split=split, dataset=sample.dataset, group=sample.group,
                    published_split=sample.split, kind=kind, mask_source=mask_source, sample=sample,
                    target_sample=target_sample,
                )
            )

    def mask_source(self, sample: Sample, class_name: str) -> tuple[str, Sample | None]:
        if all(a.has_mask for a in sample.annotations if a.class_name == class_name):
            return "annotation", None
        source = self.config.mask_sources.get(class_name, BOX_TARGET)
        if source == BOX_TARGET:
            return BOX_TARGET, None
        target = self.pseudo[class_name].get(image_key(sample.image_path))
        if target is None:
            self.missing_pseudo[class_name].append(sample.image_path)
        return source, target

    def check_pseudo_masks(self) -> None:
        for class_name, missing in self.missing_pseudo.items():
            source = self.config.mask_sources[class_name]
            raise DataError(
                f"{source}: no pseudo-mask for {len(missing)} box-only {class_name!r} image(s), e.g. {missing[0]}; "
                f"run `drywallqa masks` on the same dataset, or set mask_sources.{class_name}: box"
            )

    def balance(self) -> list[str]:
        """Add augmented copies so every train class reaches ``balance_ratio`` x the largest."""
        if self.config.balance_ratio is None:
            return []
        by_class: dict[str, list[TrainRecord]] = defaultdict(list)
        for r in self.records:
            if r.split == TRAIN:
                by_class[r.class_name].append(r)
        missing = sorted({r.class_name for r in self.records} - set(by_class))
        notes = [f"train: no {name!r} item to balance with (all in other splits)" for name in missing]
        if len(by_class) < 2:
            return notes
        target = round(self.config.balance_ratio * max(len(v) for v in by_class.values()))
        for class_name in sorted(by_class):
            originals = by_class[class_name]
            # Copies cycle through a seeded permutation, so every original is copied at most
            # once more than any other.
            order = self.rng.permutation(len(originals))
            copies_made: Counter[int] = Counter()
            for k in range(max(target - len(originals), 0)):
                original = originals[order[k % len(originals)]]
                copies_made[original.index] += 1
                self.records.append(
                    TrainRecord(
                        index=len(self.records), image=original.image, class_name=class_name,
                        prompts=original.prompts, split=TRAIN, dataset=original.dataset, group=original.group,
                        published_split=original.published_split, kind=original.kind,
                        mask_source=original.mask_source, augmented_from=original.index,
                        copy_index=copies_made[original.index], sample=original.sample,
                        target_sample=original.target_sample,
                    )
                )
        return notes

    def add_negatives(self) -> list[str]:
        """Add ``negative_rate`` cross-prompt negatives to each split of ``negative_splits``."""
        rate = self.config.negative_rate
        all_classes = sorted({r.class_name for r in self.records})
        notes = []
        if rate <= 0:
            return notes
        for split in self.config.negative_splits:
            base = [r for r in self.records if r.split == split]
            if not base:
                continue
            # Classes each image is known to hold (or be annotated for): never used as its negative.
            own: dict[str, set[str]] = defaultdict(set)
            for r in base:
                own[str(r.image)].add(r.class_name)
            # Sources: original records, one per image, grouped by their class so negatives
            # come equally from the images of every class.
            sources: dict[str, list[TrainRecord]] = defaultdict(list)
            seen: set[str] = set()
            for r in base:
                if r.is_copy or str(r.image) in seen or not set(all_classes) - own[str(r.image)]:
                    continue
                if r.dataset in self.train_only:
                    # Generated crack scenes may show an unannotated joint: never a taping negative.
                    continue
                seen.add(str(r.image))
                sources[r.class_name].append(r)
            wanted = round(rate * len(base) / (1 - rate))
            if not sources:
                notes.append(f"{split}: no cross-prompt negatives (every image holds every class)")
                continue
            source_classes = sorted(sources)
            orders = {c: self.rng.permutation(len(sources[c])) for c in source_classes}
            for k in range(wanted):
                image_class = source_classes[k % len(source_classes)]
                pool = sources[image_class]
                turn = k // len(source_classes)
                source = pool[orders[image_class][turn % len(pool)]]
                choices = sorted(set(all_classes) - own[str(source.image)])
                negative_class = choices[int(self.rng.integers(len(choices)))]
                self.records.append(
                    TrainRecord(
                        index=len(self.records), image=source.image, class_name=negative_class,
                        prompts=self.prompts(negative_class, split), split=split, dataset=source.dataset,
                        group=source.group, published_split=source.published_split, kind="negative",
                        mask_source="empty", negative_of=source.index, sample=source.sample,
                    )
                )
        return notes


def describe_sources(trainset: TrainSet) -> dict[str, int]:
    """Items per mask source (``annotation``, ``box``, pseudo-mask folder, ``empty``)."""
    return dict(Counter(r.mask_source for r in trainset.records))
