"""Dataset inspection: counts per dataset and split, and source groups leaking between splits."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from drywallqa.data.core import AnnotatedDataset
from drywallqa.data.groups import shared_groups


@dataclass(frozen=True)
class SplitSummary:
    """Counts for one split of one dataset.

    Attributes:
        images: Images loaded (skipped ones excluded).
        annotations: Annotations loaded.
        classes: Annotations per prompt class.
        masked_annotations: Annotations with a true shape (polygon or RLE).
        box_only_annotations: Annotations with a box only.
        background_images: Images without any annotation.
        groups: Distinct source groups.
    """

    dataset: str
    split: str
    images: int
    annotations: int
    classes: dict[str, int]
    masked_annotations: int
    box_only_annotations: int
    background_images: int
    groups: int


@dataclass(frozen=True)
class DatasetInspection:
    """Inspection of one dataset: per-split summaries, leakage and skipped entries.

    Attributes:
        shared_groups: ``{group: [splits]}`` for source groups found in more than one split.
        skipped: Skipped entries per reason.
    """

    name: str
    format: str
    root: str
    splits: list[SplitSummary]
    shared_groups: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(s.images for s in self.splits)


def inspect_dataset(dataset: AnnotatedDataset) -> DatasetInspection:
    """Summarise a loaded dataset per split (see :class:`DatasetInspection`)."""
    splits = []
    groups_by_split: dict[str, set[str]] = {}
    for split in dataset.splits:
        samples = [s for s in dataset.samples if s.split == split]
        anns = [a for s in samples for a in s.annotations]
        groups_by_split[split] = {s.group for s in samples}
        splits.append(
            SplitSummary(
                dataset=dataset.name,
                split=split or "-",
                images=len(samples),
                annotations=len(anns),
                classes=dict(sorted(Counter(a.class_name for a in anns).items())),
                masked_annotations=sum(a.has_mask for a in anns),
                box_only_annotations=sum(not a.has_mask for a in anns),
                background_images=sum(not s.annotations for s in samples),
                groups=len(groups_by_split[split]),
            )
        )
    order = {"train": 0, "valid": 1, "test": 2}
    splits.sort(key=lambda s: (order.get(s.split, 3), s.split))
    return DatasetInspection(
        name=dataset.name,
        format=dataset.format,
        root=str(dataset.root or ""),
        splits=splits,
        shared_groups=shared_groups(groups_by_split),
        skipped=dataset.issues.counts(),
    )


def inspection_to_dict(inspections: list[DatasetInspection]) -> dict:
    """JSON-ready form of several inspections (what ``drywallqa data inspect --json`` writes)."""
    return {"datasets": [asdict(i) | {"images": i.images} for i in inspections]}


def render_inspection(inspections: list[DatasetInspection], console=None, max_groups: int = 20) -> None:
    """Print inspections as rich tables: one row per dataset split, then leakage and skips."""
    from rich.table import Table

    from drywallqa.console import get_console

    console = console or get_console()
    table = Table(title="Datasets", header_style="bold")
    for col in ("dataset", "split", "images", "annots", "classes", "masked", "box-only", "empty", "groups"):
        table.add_column(col, justify="left" if col in {"dataset", "split", "classes"} else "right", overflow="fold")
    for insp in inspections:
        for s in insp.splits:
            classes = ", ".join(f"{k} {v}" for k, v in s.classes.items()) or "-"
            table.add_row(
                insp.name, s.split, str(s.images), str(s.annotations), classes, str(s.masked_annotations),
                str(s.box_only_annotations), str(s.background_images), str(s.groups),
            )
    console.print(table)
    for insp in inspections:
        if insp.shared_groups:
            pairs = Counter(" & ".join(v) for v in insp.shared_groups.values())
            where = "; ".join(f"{k}: {n}" for k, n in pairs.items())
            names = list(insp.shared_groups)
            shown = ", ".join(names[:max_groups]) + (f", ... (+{len(names) - max_groups} more, see --json)" if len(names) > max_groups else "")
            console.print(
                f"[bold red]leakage[/] {insp.name}: {len(names)} source group(s) in more than one split ({where}): {shown}"
            )
        else:
            console.print(f"[green]no leakage[/] {insp.name}: every source group is in one split")
        if insp.skipped:
            skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(insp.skipped.items()))
            console.print(f"[yellow]skipped[/] {insp.name}: {sum(insp.skipped.values())} entries ({skipped})")
