"""Building a leak-free training set: :func:`build_trainset` turns datasets into a :class:`TrainSet`.

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
from pathlib import Path

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Sample
from drywallqa.data.groups import shared_groups, split_groups
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError
from drywallqa.trainsets.config import BOX_TARGET, TrainSetConfig
from drywallqa.trainsets.core import PUBLISHED_PREFIX, TRAIN, TrainRecord, TrainSet
from drywallqa.trainsets.sources import image_key, load_datasets, load_pseudo_masks


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
    builder = _RecordBuilder(config, prompt_config, train_only, [ds.root for ds in datasets if ds.root is not None])
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

    def __init__(self, config: TrainSetConfig, prompt_config: PromptConfig, train_only: set[str] = frozenset(),
                 dataset_roots: list[Path] | None = None):
        self.config = config
        self.prompt_config = prompt_config
        self.train_only = train_only
        self.records: list[TrainRecord] = []
        self.rng = np.random.default_rng(config.seed)
        self.pseudo: dict[str, dict[str, Sample]] = {
            name: load_pseudo_masks(source, prompt_config, dataset_roots)
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
