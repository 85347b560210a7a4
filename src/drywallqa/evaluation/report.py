"""The result of :func:`drywallqa.evaluation.evaluate`: :class:`EvalReport` and its parts.

Every number says how it was reduced: ``iou``/``dice`` are per-image scores summarised as mean ±
std over images, ``iou_pooled``/``dice_pooled`` come from pixel counts summed over all images
(see :mod:`drywallqa.evaluation.metrics`). :data:`DEFINITIONS` spells this out and travels with
every JSON and Markdown report.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.evaluation.leakage import TrainingOverlap
from drywallqa.evaluation.metrics import MeanStd
from drywallqa.files import atomic_write_json, atomic_write_text

DEFINITIONS = {
    "iou": "per-image IoU tp/(tp+fp+fn), summarised as mean ± population std over images",
    "dice": "per-image Dice 2tp/(2tp+fp+fn), summarised as mean ± population std over images",
    "iou_pooled": "IoU of the pixel counts summed over all images (large masks weigh more)",
    "dice_pooled": "Dice of the pixel counts summed over all images",
    "empty_mask_rule": "an image with empty truth and empty prediction scores zero_division (default 1.0); "
    "empty truth with any predicted pixel scores 0.0",
    "target": "'mask': annotated polygons/RLE (box-only annotations as filled boxes); 'box': filled "
    "annotated boxes (as published taping-area results); pseudo-masks are never truth",
    "box": "components of the predicted mask (8-connected) as boxes, matched one-to-one to annotated "
    "boxes at IoU >= box_iou_threshold (greedy by IoU); precision/recall/F1 from counts summed over images",
    "confidence": "mean of the predictor's confidence over images; confidence_iou_pearson is its Pearson "
    "correlation with per-image IoU (null when undefined)",
    "wrong_prompts": "the images scored for this class (its datasets' images in the split) prompted with another "
    "class's canonical prompt: fp_rate is predicted "
    "pixels / counted pixels per image (the other class's truth pixels in the image are not counted), mean ± std "
    "over images; images_with_fp is the share of images with any predicted pixel",
    "paraphrases": "per-image IoU (mean ± std) with each held-out paraphrase; drop = canonical mean IoU - "
    "paraphrase mean IoU",
    "threshold": "probability threshold (foreground when p > threshold); threshold_source 'sweep' means it "
    "maximised mean per-image IoU (averaged over classes) on threshold_split, never the reported split",
}

_WRAPPING_COLUMNS = ("prompt", "prompted with")
_TEXT_COLUMNS = ("target", "kind", *_WRAPPING_COLUMNS)


@dataclass(frozen=True)
class ImageRecord:
    """Scores of one image for its class's canonical prompt.

    Attributes:
        image: Path of the image file.
        dataset: Dataset the image belongs to.
        class_name: Prompt class scored.
        iou: Per-image IoU (``zero_division`` when truth and prediction are empty).
        dice: Per-image Dice.
        confidence: The predictor's confidence for this prediction.
        truth_pixels: Foreground pixels in the truth.
        predicted_pixels: Foreground pixels in the prediction.
    """

    image: str
    dataset: str
    class_name: str
    iou: float
    dice: float
    confidence: float
    truth_pixels: int
    predicted_pixels: int


@dataclass(frozen=True)
class BoxScores:
    """Box-level matching of predicted components to annotated boxes (counts summed over images)."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    iou_threshold: float = 0.5


@dataclass(frozen=True)
class WrongPromptScores:
    """Images of one class prompted with another class's canonical prompt.

    Attributes:
        prompt_class: The other class whose prompt was used.
        prompt: That prompt's text.
        fp_rate: Predicted pixels / counted pixels per image, mean ± std over images.
        images_with_fp: Share of images with at least one predicted (counted) pixel.
    """

    prompt_class: str
    prompt: str
    fp_rate: MeanStd
    images_with_fp: float


@dataclass(frozen=True)
class ParaphraseScores:
    """IoU with one held-out paraphrase of a class's prompt, next to the canonical prompt's.

    Attributes:
        prompt: The paraphrase.
        iou: Per-image IoU, mean ± std over images.
        iou_pooled: IoU over pixel counts summed over images.
        drop: Canonical per-image mean IoU minus this paraphrase's (positive = worse).
    """

    prompt: str
    iou: MeanStd
    iou_pooled: float
    drop: float


@dataclass(frozen=True)
class ClassScores:
    """Everything measured for one prompt class.

    Attributes:
        class_name: The prompt class.
        prompt: Its canonical prompt (the one scored in ``iou``/``dice``).
        target: ``"mask"`` (annotated shapes) or ``"box"`` (filled boxes); see
            :mod:`drywallqa.evaluation.targets`.
        images: Images scored (including those where the class is absent).
        empty_truth_images: Images in which the class has no truth pixels.
        iou: Per-image IoU, mean ± std over images.
        dice: Per-image Dice, mean ± std over images.
        iou_pooled: IoU over pixel counts summed over all images.
        dice_pooled: Dice over pixel counts summed over all images.
        box: Box-level precision/recall/F1 of predicted components.
        confidence: Predictor confidence, mean ± std over images.
        confidence_iou_pearson: Pearson correlation of confidence with per-image IoU (NaN if undefined).
        wrong_prompt_fp_rate: ``fp_rate`` over all (image, other prompt) pairs, mean ± std.
        wrong_prompt_images_with_fp: Share of (image, other prompt) pairs with any predicted pixel.
        wrong_prompts: The same per other prompt.
        paraphrases: One entry per held-out paraphrase.
    """

    class_name: str
    prompt: str
    target: str
    images: int
    empty_truth_images: int
    iou: MeanStd
    dice: MeanStd
    iou_pooled: float
    dice_pooled: float
    box: BoxScores
    confidence: MeanStd
    confidence_iou_pearson: float
    wrong_prompt_fp_rate: MeanStd
    wrong_prompt_images_with_fp: float
    wrong_prompts: list[WrongPromptScores] = field(default_factory=list)
    paraphrases: list[ParaphraseScores] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.target not in ("mask", "box"):
            raise ValueError(f"target must be 'mask' or 'box', got {self.target!r}")


@dataclass(frozen=True)
class ThresholdSweep:
    """The threshold search on a separate split.

    Attributes:
        split: The split the threshold was chosen on.
        thresholds: Candidate thresholds, ascending.
        mean_iou: Per candidate, per-image mean IoU averaged over classes (the objective).
        per_class: ``{class_name: per-image mean IoU per candidate}``.
        images: Images of the sweep split used.
        chosen: The threshold with the highest objective (ties: closest to 0.5, then lower).
        chosen_per_class: Each class's own best threshold, by the same rule (what
            :func:`drywallqa.evaluation.calibrate_thresholds` stores in a model folder).
    """

    split: str
    thresholds: list[float]
    mean_iou: list[float]
    per_class: dict[str, list[float]]
    images: int
    chosen: float
    chosen_per_class: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalMetadata:
    """What was evaluated, how, and when.

    Attributes:
        predictor: The predictor's name.
        split: The reported split.
        datasets: Names of the datasets that contributed images.
        images: Distinct images scored.
        threshold: Probability threshold of the reported masks, or ``{class: threshold}`` for a
            model's own per-class thresholds.
        threshold_source: ``"fixed"`` (given), ``"sweep"`` (chosen on ``threshold_split``) or
            ``"model"`` (the predictor's own: a model's calibrated per-class thresholds).
        threshold_split: The split that chose the threshold, or None when fixed.
        zero_division: Score of an image with empty truth and empty prediction.
        box_iou_threshold: Box IoU needed for a box-level match.
        max_images: Cap on images per class, or None.
        timestamp: UTC time the evaluation finished, ISO 8601.
        version: drywallqa version.
        predictor_info: What the predictor says about itself (e.g. whether its box prompts come
            from the ground truth, which inflates scores).
    """

    predictor: str
    split: str
    datasets: list[str]
    images: int
    threshold: float | dict[str, float]
    threshold_source: str
    threshold_split: str | None
    zero_division: float
    box_iou_threshold: float
    max_images: int | None
    timestamp: str
    version: str
    predictor_info: dict = field(default_factory=dict)

    def threshold_text(self, long: bool = False) -> str:
        """The threshold and where it came from, e.g. ``0.4 (chosen on valid)``."""
        if isinstance(self.threshold, dict):
            values = ", ".join(f"{name} {value:g}" for name, value in sorted(self.threshold.items()))
            return f"{values} (the model's own{', calibrated per class' if long else ''})"
        if self.threshold_source == "sweep":
            how = (f"chosen on split {self.threshold_split!r} (max mean per-image IoU), not on {self.split!r}" if long
                   else f"sweep on {self.threshold_split}")
        else:
            how = "fixed"
        return f"{self.threshold:g} ({how})"

@dataclass
class Example:
    """A downscaled image with its truth and prediction, for the best/worst grid.

    Attributes:
        record: The image's scores.
        image: RGB ``uint8`` ``(h, w, 3)`` thumbnail.
        truth: ``(h, w)`` bool truth at thumbnail size.
        prediction: ``(h, w)`` bool prediction at thumbnail size.
    """

    record: ImageRecord
    image: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray

    def __repr__(self) -> str:
        return f"Example({Path(self.record.image).name!r}, iou={self.record.iou:.3f}, {self.image.shape[1]}x{self.image.shape[0]})"


@dataclass
class EvalReport:
    """Scores per prompt class, per-image records and how they were obtained.

    Attributes:
        metadata: Predictor, split, threshold and its source, datasets, counts, time.
        classes: ``{class_name: ClassScores}`` in class order.
        records: One :class:`ImageRecord` per (image, class) scored with the canonical prompt.
        sweep: The threshold search, when the threshold was chosen on another split.
        notes: Warnings worth reading next to the numbers (e.g. groups shared between splits).
        examples: ``{class_name: {"best": [...], "worst": [...]}}`` thumbnails for
            :meth:`write_plots`; not serialised.
        leakage: Scored source groups the model trained on (unknown when its record does not say).

    Example:
        >>> report = evaluate(predictor, datasets)      # doctest: +SKIP
        >>> report.render()                             # doctest: +SKIP
        >>> report.write("runs/eval")                   # doctest: +SKIP
    """

    metadata: EvalMetadata
    classes: dict[str, ClassScores]
    records: list[ImageRecord] = field(default_factory=list)
    sweep: ThresholdSweep | None = None
    notes: list[str] = field(default_factory=list)
    examples: dict[str, dict[str, list[Example]]] = field(default_factory=dict, repr=False)
    leakage: TrainingOverlap | None = None

    def __post_init__(self) -> None:
        for name, scores in self.classes.items():
            if scores.class_name != name:
                raise ValueError(f"classes[{name!r}] holds scores of class {scores.class_name!r}")
        unknown = {r.class_name for r in self.records} - set(self.classes)
        if unknown:
            raise ValueError(f"records of classes {sorted(unknown)} have no entry in classes {sorted(self.classes)}")

    def __repr__(self) -> str:
        meta = self.metadata
        parts = [
            f"{name}: IoU {_num(c.iou.mean)}±{_num(c.iou.std)} per-image / {_num(c.iou_pooled)} pooled, n={c.images}"
            for name, c in self.classes.items()
        ]
        return (
            f"EvalReport(predictor={meta.predictor!r}, split={meta.split!r}, threshold={meta.threshold_text()}, "
            + "; ".join(parts) + ")"
        )

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict: metadata, definitions, classes, sweep, notes and per-image records.

        Undefined values (NaN) become None.
        """
        return _clean({
            "metadata": dataclasses.asdict(self.metadata),
            "definitions": dict(DEFINITIONS),
            "classes": {name: dataclasses.asdict(c) for name, c in self.classes.items()},
            "sweep": dataclasses.asdict(self.sweep) if self.sweep else None,
            "notes": list(self.notes),
            "leakage": dataclasses.asdict(self.leakage) if self.leakage else None,
            "images": [dataclasses.asdict(r) for r in self.records],
        })

    def to_json(self, path: str | os.PathLike, indent: int | None = 2) -> Path:
        """Write :meth:`to_dict` as JSON atomically."""
        return atomic_write_json(path, self.to_dict(), indent=indent)

    def to_pandas(self, per_image: bool = False):
        """One row per class (flat columns), or one row per scored image with ``per_image=True``."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from drywallqa.errors import DrywallQAError

            raise DrywallQAError("EvalReport.to_pandas needs pandas: pip install pandas") from exc
        if per_image:
            return pd.DataFrame([dataclasses.asdict(r) for r in self.records])
        return pd.DataFrame([_flat_row(c) for c in self.classes.values()]).set_index("class")

    # -- human-readable output -------------------------------------------------------------------
    def _tables(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """``(title, header, rows)`` of the segmentation, box/confidence, prompt-fidelity and
        paraphrase tables (shared by the terminal and Markdown output)."""
        segmentation = [
            [c.class_name, c.target, str(c.images), _pm(c.iou), _num(c.iou_pooled), _pm(c.dice), _num(c.dice_pooled)]
            for c in self.classes.values()
        ]
        boxes = [
            [c.class_name, _num(c.box.precision), _num(c.box.recall),
             _num(c.box.f1), _num(c.confidence.mean), _num(c.confidence_iou_pearson, signed=True)]
            for c in self.classes.values()
        ]
        fidelity = [
            [c.class_name, f"{w.prompt_class}: {w.prompt}", str(w.fp_rate.n), _pm(w.fp_rate, percent=True),
             f"{w.images_with_fp:.0%}"]
            for c in self.classes.values() for w in c.wrong_prompts
        ]
        paraphrase = []
        for c in self.classes.values():
            if c.paraphrases:
                paraphrase.append([c.class_name, c.prompt, "canonical", _pm(c.iou), _num(c.iou_pooled), ""])
            for p in c.paraphrases:
                paraphrase.append([c.class_name, p.prompt, "held-out", _pm(p.iou), _num(p.iou_pooled),
                                   _num(p.drop, signed=True)])
        box_iou = f"{self.metadata.box_iou_threshold:g}"
        return [
            ("Segmentation (per-image: mean ± std over images; pooled: over all pixels)",
             ["class", "target", "n", "IoU\nper-image", "IoU\npooled", "Dice\nper-image", "Dice\npooled"], segmentation),
            (f"Boxes (predicted components vs annotated boxes, IoU >= {box_iou}) and confidence",
             ["class", "box\nprecision", "box\nrecall", f"box\nF1@{box_iou}", "confidence\nmean", "r(conf,\nIoU)"], boxes),
            ("Prompt fidelity (images of a class, prompted with another class)",
             ["images of", "prompted with", "n", "FP pixel\nrate", "images\nwith FP"], fidelity),
            ("Paraphrase robustness (held-out prompts; drop = canonical - held-out, per-image mean IoU)",
             ["class", "prompt", "kind", "IoU\nper-image", "IoU\npooled", "drop"], paraphrase),
        ]

    def _header_lines(self) -> list[str]:
        meta = self.metadata
        return [
            f"predictor: {meta.predictor}",
            f"split: {meta.split} ({meta.images} images; datasets: {', '.join(meta.datasets)})",
            f"threshold: {meta.threshold_text(long=True)}",
            f"empty truth and empty prediction score {meta.zero_division:g}; evaluated {meta.timestamp}",
            *([f"leakage: {self.leakage.text()}"] if self.leakage else []),
        ]

    def render(self, console=None) -> None:
        """Print the tables to the terminal with rich (a new stdout console by default)."""
        from rich import box
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        for line in self._header_lines():
            console.print(line, highlight=False)
        for title, header, rows in self._tables():
            if not rows:
                continue
            table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
            for i, col in enumerate(header):
                # Only free text (prompts) may wrap: a wrapped "0.220 ± 0.180" or class name misleads.
                text = i == 0 or col in _TEXT_COLUMNS
                table.add_column(col, justify="left" if text else "right", no_wrap=col not in _WRAPPING_COLUMNS)
            for row in rows:
                table.add_row(*row)
            console.print(table)
        for note in self.notes:
            console.print(f"note: {note}", highlight=False)

    def to_markdown(self, plots: list[str | os.PathLike] | None = None) -> str:
        """The report as Markdown: metadata, tables, notes, definitions and optional plot links.

        Args:
            plots: Plot files to embed, linked by file name (write them next to the Markdown).
        """
        out = ["# Evaluation report", ""]
        out += [f"- {line}" for line in self._header_lines()]
        for title, header, rows in self._tables():
            if not rows:
                continue
            header = [h.replace("\n", " ") for h in header]
            out += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        if self.sweep:
            best = self.sweep.mean_iou[self.sweep.thresholds.index(self.sweep.chosen)]
            out += ["", "## Threshold", "", (
                f"Chosen {self.sweep.chosen:g} on split `{self.sweep.split}` ({self.sweep.images} images), "
                f"mean per-image IoU there {_num(best)}."
            )]
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        out += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
        if plots:
            out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
        return "\n".join(out) + "\n"

    def write_plots(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write PNG plots (scores, IoU histograms, confidence, best/worst grids); see
        :func:`drywallqa.evaluation.plots.write_plots`."""
        from drywallqa.evaluation.plots import write_plots

        return write_plots(self, out_dir)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``report.json``, the plots and ``report.md`` (linking them) into ``out_dir``.

        Returns:
            ``{"json": path, "markdown": path, "plots": [paths]}``.
        """
        out_dir = Path(out_dir)
        plots = self.write_plots(out_dir)
        json_path = self.to_json(out_dir / "report.json")
        md_path = atomic_write_text(out_dir / "report.md", self.to_markdown(plots))
        return {"json": json_path, "markdown": md_path, "plots": plots}


# -- helpers ----------------------------------------------------------------------------------------
def _num(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _pm(ms: MeanStd, percent: bool = False) -> str:
    if ms.n == 0:
        return "—"
    if percent:
        return f"{ms.mean:.2%} ± {ms.std:.2%}"
    return f"{ms.mean:.3f} ± {ms.std:.3f}"


def _clean(obj):
    """Recursively replace non-finite floats by None and NumPy scalars by Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _flat_row(c: ClassScores) -> dict:
    row = {
        "class": c.class_name, "prompt": c.prompt, "target": c.target, "images": c.images,
        "iou_mean": c.iou.mean, "iou_std": c.iou.std, "iou_pooled": c.iou_pooled,
        "dice_mean": c.dice.mean, "dice_std": c.dice.std, "dice_pooled": c.dice_pooled,
        "box_precision": c.box.precision, "box_recall": c.box.recall, "box_f1": c.box.f1,
        "confidence_mean": c.confidence.mean, "confidence_iou_pearson": c.confidence_iou_pearson,
        "wrong_prompt_fp_rate": c.wrong_prompt_fp_rate.mean,
        "wrong_prompt_images_with_fp": c.wrong_prompt_images_with_fp,
    }
    for p in c.paraphrases:
        row[f"iou_mean[{p.prompt}]"] = p.iou.mean
    return row

