"""Measure pseudo-mask methods where the truth is known.

Two sources of truth:

* **Polygon / RLE datasets** (cracks): each annotation is turned into its box, the method makes a
  mask from the box, and the mask is compared with the annotation's own shape.
* **Box file + truth file** (the synthetic joints of ``drywallqa sample-data``): a split folder
  holding ``_annotations.truth.coco.json`` next to the box-only ``_annotations.coco.json``. Masks
  are made from the boxes of the box file and compared with the truth file's masks of the same
  image and annotation id.

Box-only annotations without truth (the real ``drywall-join``) get no IoU, but their fill ratio
is reported and they appear in the preview.

Metrics, counted per annotation and per image from true/false positives and false negatives:

* **per annotation** (``iou``, ``dice``): inside the annotation's box window only (the part of a
  true shape outside its own box is not counted), mean ± population std over annotations;
* **per image** (``image_iou``, ``image_dice``): union of an image's masks of a class against the
  union of its true masks, over the whole image, mean ± std over (image, class) pairs;
* **fill**: mask pixels / box pixels per annotation (``truth_fill`` is the same for the truth);
* a mask and a truth that are both empty score 1.0 (cannot happen inside a box with a shape).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.console import progress_bar
from drywallqa.data.core import AnnotatedDataset, Annotation, Sample
from drywallqa.data.formats.coco import find_coco_files, load_coco
from drywallqa.errors import ConfigError
from drywallqa.evaluation.metrics import dice_score, get_stats, iou_score
from drywallqa.pseudomask.base import PseudoMaskMethod, box_window, imap_in_workers, predict_annotations
from drywallqa.pseudomask.registry import create_method, method_name, parse_methods

TRUTH_ANNOTATION_FILE = "_annotations.truth.coco.json"  # as written by drywallqa.data.synthetic


# -- metrics --------------------------------------------------------------------------------------
# Counted and scored by drywallqa.evaluation.metrics, the project's one definition of IoU/Dice.
def confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` pixel counts of two bool ``(H, W)`` masks (:func:`~drywallqa.evaluation.metrics.get_stats`)."""
    tp, fp, fn, _ = get_stats(pred, truth)
    return int(tp[0]), int(fp[0]), int(fn[0])


def iou_dice(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """IoU and Dice of one mask from its counts; both empty (``tp + fp + fn == 0``) scores ``(1.0, 1.0)``."""
    counts = (np.array([tp]), np.array([fp]), np.array([fn]))
    return (float(iou_score(*counts, reduction="none", zero_division=1.0)[0]),
            float(dice_score(*counts, reduction="none", zero_division=1.0)[0]))


# -- what is evaluated ----------------------------------------------------------------------------
@dataclass
class EvalItem:
    """One image: the annotations whose boxes are prompted, and their truth when known.

    Attributes:
        sample: The image (its annotations carry the boxes).
        dataset: Name used in the report.
        truths: Per annotation, the true shape as an Annotation with a mask, or None.
    """

    sample: Sample
    dataset: str
    truths: tuple[Annotation | None, ...]

    @property
    def has_truth(self) -> bool:
        return any(t is not None for t in self.truths)


def collect_items(
    data: AnnotatedDataset, truth: str | os.PathLike | None = None, source: str | os.PathLike | None = None
) -> list[EvalItem]:
    """Build the evaluation items of a dataset (see the module docstring for the truth sources).

    Args:
        data: The dataset.
        truth: A truth COCO file or folder to pair with a box-only dataset; by default
            ``_annotations.truth.coco.json`` files beside the dataset's annotation files are used.
        source: The path ``data`` was loaded from, where truth files are looked for
            (default: the dataset's root).
    """
    truth_samples = _load_truth(data, truth, source)
    items = []
    for sample in data.samples:
        if not sample.annotations:
            continue
        if sample.has_true_mask:
            items.append(EvalItem(sample, data.name, tuple(sample.annotations)))
            continue
        paired = truth_samples.get(_key(sample))
        truths: list[Annotation | None] = list(_pair_truth(sample, paired))
        items.append(EvalItem(sample, data.name, tuple(truths)))
    return items


def _pair_truth(sample: Sample, paired: Sample | None) -> Iterable[Annotation | None]:
    """Per annotation of ``sample``: itself when it has a shape, else the truth annotation with
    the same id in ``paired`` (by position when the ids do not match), else None."""
    by_id = {a.source_id: a for a in paired.annotations} if paired is not None else {}
    by_order = paired is not None and len(paired.annotations) == len(sample.annotations) and not (
        {a.source_id for a in sample.annotations} & set(by_id)
    )
    for k, ann in enumerate(sample.annotations):
        truth = ann if ann.has_mask else paired.annotations[k] if by_order and paired else by_id.get(ann.source_id)
        yield truth if truth is not None and truth.has_mask else None


def _key(sample: Sample) -> str:
    return str(sample.image_path.resolve())


def _load_truth(data: AnnotatedDataset, truth, source) -> dict[str, Sample]:
    """Truth samples by resolved image path: from ``truth``, or truth files beside the dataset."""
    if truth is not None:
        truth = Path(truth)
        files = find_coco_files(truth, TRUTH_ANNOTATION_FILE) if truth.is_dir() else [truth]
    elif any(s.is_box_only for s in data.samples):
        base = source if source is not None else data.root
        files = _truth_files_beside(Path(base)) if base is not None else []
    else:
        files = []
    out: dict[str, Sample] = {}
    for file in files:
        for sample in load_coco(file, annotation_file=file.name, quiet=True, verify_images=False).samples:
            out[_key(sample)] = sample
    return out


def _truth_files_beside(path: Path) -> list[Path]:
    """``_annotations.truth.coco.json`` next to a json file, in a split folder, or in its split folders."""
    if path.is_file():
        candidate = path.with_name(TRUTH_ANNOTATION_FILE)
        return [candidate] if candidate.is_file() else []
    if (path / TRUTH_ANNOTATION_FILE).is_file():
        return [path / TRUTH_ANNOTATION_FILE]
    if path.is_dir():
        return sorted(p / TRUTH_ANNOTATION_FILE for p in path.iterdir() if (p / TRUTH_ANNOTATION_FILE).is_file())
    return []


# -- scoring --------------------------------------------------------------------------------------
@dataclass
class _Tally:
    """Per (dataset, class, method) lists of per-annotation and per-image values."""

    iou: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    image_iou: list[float] = field(default_factory=list)
    image_dice: list[float] = field(default_factory=list)
    fill: list[float] = field(default_factory=list)
    truth_fill: list[float] = field(default_factory=list)
    boxes: int = 0
    images: int = 0
    seconds: float = 0.0


def score_item(methods: Sequence[PseudoMaskMethod], item: EvalItem) -> list[tuple[str, str, dict]]:
    """Run every method on one image and score it.

    Returns:
        ``[(method name, class name, values)]`` where ``values`` holds lists ``iou``, ``dice``,
        ``fill``, ``truth_fill`` (per annotation), ``image_iou``, ``image_dice`` (one entry when
        the class has truth), and ``boxes``, ``seconds``.
    """
    sample = item.sample
    image = sample.load_image()
    height, width = image.shape[:2]
    classes = sorted({a.class_name for a in sample.annotations})
    results = []
    for method in methods:
        start = time.perf_counter()
        masks = predict_annotations(method, image, list(sample.annotations))
        seconds = time.perf_counter() - start
        for class_name in classes:
            values: dict = {"iou": [], "dice": [], "fill": [], "truth_fill": [], "image_iou": [], "image_dice": [],
                            "boxes": 0, "seconds": seconds / len(classes)}
            union_pred = np.zeros((height, width), bool)
            union_truth = np.zeros((height, width), bool)
            class_has_truth = True
            for ann, mask, truth in zip(sample.annotations, masks, item.truths):
                if ann.class_name != class_name:
                    continue
                ya, yb, xa, xb = box_window(ann.box, height, width)
                window = mask[ya:yb, xa:xb]
                values["boxes"] += 1
                values["fill"].append(float(window.mean()) if window.size else 0.0)
                union_pred |= mask
                if truth is None:
                    class_has_truth = False
                    continue
                true_mask = truth.to_mask(height, width)
                union_truth |= true_mask
                true_window = true_mask[ya:yb, xa:xb]
                iou, dice = iou_dice(*confusion(window, true_window))
                values["iou"].append(iou)
                values["dice"].append(dice)
                values["truth_fill"].append(float(true_window.mean()) if true_window.size else 0.0)
            if class_has_truth and values["boxes"]:
                iou, dice = iou_dice(*confusion(union_pred, union_truth))
                values["image_iou"].append(iou)
                values["image_dice"].append(dice)
            results.append((method.name, class_name, values))
    return results


# -- report ---------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


@dataclass
class MethodScore:
    """Scores of one method on one class of one dataset (see the module docstring).

    Attributes:
        dataset: Dataset name.
        class_name: Prompt class.
        method: Method name.
        boxes: Boxes prompted.
        scored: Boxes with truth (the IoU/Dice population).
        images: Images with boxes of this class.
        iou, iou_std, dice, dice_std: Per-annotation mean and std inside the box (None without truth).
        image_iou, image_iou_std, image_dice, image_dice_std: Per-image mean and std (None without truth).
        fill, fill_std: Mask pixels / box pixels.
        truth_fill: The same for the truth (None without truth).
        seconds_per_image: Method time per image on this machine.
    """

    dataset: str
    class_name: str
    method: str
    boxes: int
    scored: int
    images: int
    iou: float | None
    iou_std: float | None
    dice: float | None
    dice_std: float | None
    image_iou: float | None
    image_iou_std: float | None
    image_dice: float | None
    image_dice_std: float | None
    fill: float
    fill_std: float
    truth_fill: float | None
    seconds_per_image: float

    def __post_init__(self) -> None:
        for name in ("iou", "dice", "image_iou", "image_dice", "fill", "truth_fill"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0 + 1e-9:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}

    def __repr__(self) -> str:
        iou = f"IoU {self.iou:.3f}±{self.iou_std:.3f}" if self.iou is not None else "no truth"
        return (f"MethodScore({self.method!r}, {self.dataset}/{self.class_name}, {self.boxes} boxes, {iou}, "
                f"fill {self.fill:.2f})")


def _fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"


@dataclass
class PseudoMaskReport:
    """Scores of pseudo-mask methods per dataset and class; prints as a markdown table.

    Attributes:
        scores: One :class:`MethodScore` per (dataset, class, method), in evaluation order.
        preview: The preview grid written, if any.
        settings: How the report was made (datasets, methods, workers, machine).
    """

    scores: list[MethodScore] = field(default_factory=list)
    preview: Path | None = None
    settings: dict = field(default_factory=dict)

    def best(self, dataset: str | None = None, class_name: str | None = None) -> str | None:
        """The method with the highest mean per-annotation IoU (None without truth)."""
        rows = [s for s in self.scores if s.iou is not None and dataset in (None, s.dataset)
                and class_name in (None, s.class_name)]
        return max(rows, key=lambda s: s.iou or 0.0).method if rows else None  # rows have an IoU

    def score(self, method: str, class_name: str | None = None, dataset: str | None = None) -> MethodScore:
        """The row of ``method`` (and class / dataset when several)."""
        for row in self.scores:
            if row.method == method and class_name in (None, row.class_name) and dataset in (None, row.dataset):
                return row
        raise KeyError(f"no score for method={method!r}, class={class_name!r}, dataset={dataset!r}")

    def to_dict(self) -> dict:
        """JSON-ready: settings, preview path and one dict per row."""
        return {"settings": self.settings, "preview": str(self.preview) if self.preview else None,
                "scores": [s.to_dict() for s in self.scores]}

    def to_pandas(self):
        """The rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame([s.to_dict() for s in self.scores])

    def to_markdown(self) -> str:
        """A markdown table: one row per dataset, class and method."""
        lines = [
            (
                "| dataset | class | method | boxes | IoU (mean ± std) | Dice (mean ± std) | image IoU | image Dice "
                "| fill (truth) | s/image |"
            ),
            "|---|---|---|---:|---|---|---|---|---|---:|",
        ]
        for s in self.scores:
            truth_fill = f" ({s.truth_fill:.2f})" if s.truth_fill is not None else ""
            lines.append(
                f"| {s.dataset} | {s.class_name} | {s.method} | {s.boxes} | {_fmt(s.iou, s.iou_std)} | "
                f"{_fmt(s.dice, s.dice_std)} | {_fmt(s.image_iou, s.image_iou_std)} | "
                f"{_fmt(s.image_dice, s.image_dice_std)} | {s.fill:.2f}{truth_fill} | {s.seconds_per_image:.3f} |"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        best = {f"{s.dataset}/{s.class_name}": self.best(s.dataset, s.class_name) for s in self.scores}
        return f"PseudoMaskReport({len(self.scores)} rows, best={best})"


# -- runner ---------------------------------------------------------------------------------------
_WORKER_METHODS: list[PseudoMaskMethod] = []


def _init_worker(methods: list[PseudoMaskMethod]) -> None:
    global _WORKER_METHODS
    import cv2

    cv2.setNumThreads(1)
    _WORKER_METHODS = methods


def _score_in_worker(item: EvalItem) -> tuple[str, list]:
    return item.dataset, score_item(_WORKER_METHODS, item)


def evaluate_pseudo_masks(
    dataset: str | os.PathLike | AnnotatedDataset | Sequence[str | os.PathLike | AnnotatedDataset],
    methods: str | Iterable[str | PseudoMaskMethod] = "box,grabcut,ridge",
    *,
    truth: str | os.PathLike | None = None,
    splits: str | Iterable[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 2,
    weights: str | None = None,
    device: str | None = None,
    method_options: dict[str, dict] | None = None,
    preview: str | os.PathLike | None = None,
    preview_images: int = 6,
    progress: bool = True,
) -> PseudoMaskReport:
    """Score pseudo-mask methods against the truth of one or more datasets.

    Args:
        dataset: Dataset folder / json path or loaded dataset, or a list of them (one report).
        methods: ``"box,grabcut,ridge"``, a list of names, or method instances.
        truth: Truth COCO file or folder for a box-only dataset (default: truth files beside it).
        splits: Only these splits of each dataset.
        limit: Evaluate at most this many images per dataset (a seeded random subset).
        seed: Seed of the subset and of the preview's image choice.
        workers: Worker processes (CPU methods only; with ``sam``/``model`` all run in-process).
        weights: Checkpoint for ``sam`` / ``model``.
        device: Torch device for ``sam`` / ``model``.
        method_options: ``{method name: {option: value}}``.
        preview: Write a preview grid PNG here (image with boxes and truth, then one column per method).
        preview_images: Rows of the preview grid.
        progress: Show a tqdm progress bar on stderr.

    Returns:
        A :class:`PseudoMaskReport`.

    Raises:
        ConfigError: Unknown method, or a dataset without any annotations.
    """
    start = time.perf_counter()
    names = parse_methods(methods)
    options = method_options or {}
    instances = [
        create_method(m, weights=weights, device=device, **options.get(method_name(m), {}))
        if isinstance(m, str) else m
        for m in names
    ]
    sources = [dataset] if isinstance(dataset, (str, os.PathLike, AnnotatedDataset)) else list(dataset)
    items: list[EvalItem] = []
    for source in sources:
        data = source if isinstance(source, AnnotatedDataset) else AnnotatedDataset.load(source)
        if splits is not None:
            data = data.split(splits)
        found = collect_items(data, truth, None if isinstance(source, AnnotatedDataset) else source)
        if not found:
            raise ConfigError(f"dataset {data.name!r} has no annotated images to evaluate")
        if limit is not None and len(found) > limit:
            chosen = np.random.default_rng(seed).choice(len(found), limit, replace=False)
            found = [found[i] for i in sorted(chosen)]
        items.extend(found)

    tallies: dict[tuple[str, str, str], _Tally] = {}
    bar = progress_bar(len(items), "evaluate", enabled=progress)
    try:
        for dataset_name, results in _run(instances, items, workers):
            for name, class_name, values in results:
                tally = tallies.setdefault((dataset_name, class_name, name), _Tally())
                for key in ("iou", "dice", "image_iou", "image_dice", "fill", "truth_fill"):
                    getattr(tally, key).extend(values[key])
                tally.boxes += values["boxes"]
                tally.images += 1
                tally.seconds += values["seconds"]
            bar.update(1)
    finally:
        bar.close()

    order = {m.name: i for i, m in enumerate(instances)}
    scores = []
    for (dataset_name, class_name, name), t in sorted(
        tallies.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        iou, iou_std = _mean_std(t.iou)
        dice, dice_std = _mean_std(t.dice)
        image_iou, image_iou_std = _mean_std(t.image_iou)
        image_dice, image_dice_std = _mean_std(t.image_dice)
        fill, fill_std = _mean_std(t.fill)
        truth_fill, _ = _mean_std(t.truth_fill)
        scores.append(MethodScore(
            dataset_name, class_name, name, t.boxes, len(t.iou), t.images, iou, iou_std, dice, dice_std,
            image_iou, image_iou_std, image_dice, image_dice_std, fill or 0.0, fill_std or 0.0, truth_fill,
            t.seconds / max(t.images, 1),
        ))
    report = PseudoMaskReport(scores, settings={
        "datasets": [str(getattr(s, "root", None) or s) for s in sources],
        "methods": {m.name: m.config() for m in instances},
        "images": len(items), "limit": limit, "seed": seed, "workers": workers,
        "cpu_count": os.cpu_count(), "seconds": round(time.perf_counter() - start, 2),
    })
    if preview is not None:
        from drywallqa.pseudomask.preview import write_preview

        report.preview = write_preview(preview, items, instances, rows=preview_images, seed=seed)
    return report


def _run(methods: list[PseudoMaskMethod], items: list[EvalItem], workers: int):
    if workers <= 1 or len(items) <= 1 or any(m.uses_torch for m in methods):
        for item in items:
            yield item.dataset, score_item(methods, item)
        return
    yield from imap_in_workers(_score_in_worker, items, workers, _init_worker, (methods,), max_chunksize=8)


