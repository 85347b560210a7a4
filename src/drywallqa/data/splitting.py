"""Group-aware re-splitting of a dataset (``drywallqa data split``)."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from drywallqa.data.core import AnnotatedDataset, Sample
from drywallqa.data.groups import parse_fractions, shared_groups, split_groups
from drywallqa.files import atomic_write_text


@dataclass(frozen=True)
class SplitAssignment:
    """A new split of a dataset's samples, whole source groups at a time.

    Attributes:
        assignment: ``{group: new split}``.
        fractions: The requested image shares.
        seed: Seed of the shuffle.
    """

    samples: list[Sample]
    assignment: dict[str, str]
    fractions: dict[str, float]
    seed: int

    def split_of(self, sample: Sample) -> str:
        return self.assignment[f"{sample.dataset}/{sample.group}"]

    @property
    def images_per_split(self) -> dict[str, int]:
        counts = Counter(self.split_of(s) for s in self.samples)
        return {name: counts.get(name, 0) for name in self.fractions}

    @property
    def groups_per_split(self) -> dict[str, int]:
        counts = Counter(self.assignment.values())
        return {name: counts.get(name, 0) for name in self.fractions}

    def leaked_groups(self) -> dict[str, list[str]]:
        """Groups in more than one new split; always empty by construction, checked by tests."""
        by_split: dict[str, set[str]] = {}
        for s in self.samples:
            by_split.setdefault(self.split_of(s), set()).add(f"{s.dataset}/{s.group}")
        return shared_groups(by_split)

    def to_csv(self) -> str:
        """CSV manifest: image, dataset, group, original split, new split."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "dataset", "group", "original_split", "split"])
        for s in self.samples:
            writer.writerow([str(s.image_path), s.dataset, s.group, s.split, self.split_of(s)])
        return buf.getvalue()

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_csv` atomically."""
        return atomic_write_text(path, self.to_csv())


def group_split(
    datasets: AnnotatedDataset | list[AnnotatedDataset],
    fractions: str | dict[str, float] = "0.8,0.1,0.1",
    seed: int = 0,
) -> SplitAssignment:
    """Split the samples of one or more datasets into new splits by source group.

    All samples are pooled regardless of their original split, so groups that leaked across the
    published splits end up in exactly one new split. Groups are keyed by dataset and group name.

    Args:
        datasets: One dataset or several.
        fractions: Image shares per split, e.g. ``"0.8,0.1,0.1"`` or ``{"train": 0.9, "valid": 0.1}``.
        seed: Seed; the same inputs and seed always give the same split.
    """
    datasets = [datasets] if isinstance(datasets, AnnotatedDataset) else list(datasets)
    fractions = parse_fractions(fractions)
    samples = [s for ds in datasets for s in ds.samples]
    sizes = Counter(f"{s.dataset}/{s.group}" for s in samples)
    return SplitAssignment(samples, split_groups(sizes, fractions, seed), fractions, seed)
