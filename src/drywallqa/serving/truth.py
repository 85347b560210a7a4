"""A ``predict`` run scored against true masks, where they exist (the quickstart's sample data).

:func:`attach_truth` adds to each prediction of a run whose image has a true mask of its class a
``truth`` entry (kept in :attr:`~drywallqa.inference.Prediction.extra` and written into its
record), ``{"iou", "truth_pixels", "verdict", "overlay"}``, and writes the truth overlay beside
the prediction's, so the HTML report shows prediction and truth side by side.

The truth's ``verdict`` is what the same QA rules say of the true mask, with the same states
(:data:`~drywallqa.qa.VERDICTS`): a true mask with nothing in it is judged like a predicted one,
so a crack photo with no crack passes, and a joint photo whose joint lies out of frame is ``not
found`` (``fail`` under rules that make the joint ``required``). A prediction's verdict is right
when it is the truth's: a photo whose crack the generator drew too short to matter passes too.
Counting "every crack photo fails" instead would call those right answers wrong.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from drywallqa.evaluation.metrics import get_stats, iou_score
from drywallqa.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_image
from drywallqa.image_codecs import orient
from drywallqa.inference import Predictions
from drywallqa.inference.predictions import RESULTS_JSONL, results_file
from drywallqa.inference.render import jpeg_bytes, render_overlay
from drywallqa.qa.inspection import inspect_mask
from drywallqa.qa.rules import QARules

TRUTH_COLOUR = (40, 170, 60)
TRUTH_DIR = "truth"


@dataclass
class TruthScores:
    """How a ``predict`` run compares with the true masks (:func:`attach_truth`).

    Attributes:
        iou: ``{class name: mean IoU}`` over the records scored (IoU 1 when both masks are empty).
        verdicts_right: ``{class name: records whose verdict is the true mask's}``.
        scored: ``{class name: records scored}``.
        wrong: ``(image file name, predicted verdict, true mask's verdict)`` of every wrong verdict.
    """

    iou: dict[str, float] = field(default_factory=dict)
    verdicts_right: dict[str, int] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)
    wrong: list[tuple[str, str, str]] = field(default_factory=list)

    def describe(self, class_name: str) -> str:
        """One line for one class, e.g. ``verdicts as the exact masks' 10 of 10; mask IoU ... 0.81``."""
        return (f"verdicts as the exact masks' {self.verdicts_right[class_name]} of {self.scored[class_name]}; "
                f"mask IoU against the generator's exact masks {self.iou[class_name]:.2f}")


def attach_truth(
    results: str | os.PathLike, truths: dict[tuple[str, str], np.ndarray], qa_rules: QARules | None = None
) -> TruthScores:
    """Score the records of a ``predict`` run against true masks, in place.

    Args:
        results: The run's output folder.
        truths: ``{(resolved image path, class name): (H, W) bool}``; images without one are left alone.
        qa_rules: The QA rules the run judged its masks by (the built-in ones by default); the
            true masks, at the image file's size, are judged by the same rules with the record's
            ``mm_per_px``.

    Returns:
        IoU and verdict agreement per class, and the records whose verdict differs from the truth's.
    """
    predictions, folder = list(Predictions.read(results)), results_file(results).parent
    qa_rules = qa_rules or QARules.default()
    scores: dict[str, list[float]] = defaultdict(list)
    right: dict[str, int] = defaultdict(int)
    wrong: list[tuple[str, str, str]] = []
    for index, prediction in enumerate(predictions):
        truth = truths.get((str(Path(prediction.image).resolve()), prediction.class_name))
        if truth is None:
            continue
        # The true mask is in the file's pixel order (a dataset's), the prediction as a viewer shows the photo.
        orientation = prediction.image_orientation or 1
        truth = orient(truth, orientation)
        iou = iou_score(*get_stats(prediction.load_mask(), truth))
        name = prediction.name
        photo = orient(read_image(prediction.image), orientation)
        overlay = render_overlay(photo, truth, TRUTH_COLOUR)
        atomic_write_bytes(folder / TRUTH_DIR / f"{name}.jpg", jpeg_bytes(overlay, quality=85))
        true_verdict = inspect_mask(truth, prediction.prompt, image=photo, mm_per_px=prediction.mm_per_px,
                                    qa_rules=qa_rules).verdict.verdict
        prediction = predictions[index] = replace(prediction, extra={**prediction.extra, "truth": {
            "iou": iou, "truth_pixels": int(truth.sum()), "verdict": true_verdict, "overlay": f"{TRUTH_DIR}/{name}.jpg"}})
        atomic_write_json(folder / "records" / f"{name}.json", prediction.to_dict(), indent=1)
        scores[prediction.class_name].append(iou)
        if prediction.verdict.verdict == true_verdict:
            right[prediction.class_name] += 1
        else:
            wrong.append((Path(prediction.image).name, prediction.verdict.verdict, true_verdict))
    atomic_write_text(folder / RESULTS_JSONL, Predictions(predictions).to_jsonl())
    return TruthScores(
        iou={name: float(np.mean(values)) for name, values in sorted(scores.items())},
        verdicts_right={name: right[name] for name in sorted(scores)},
        scored={name: len(values) for name, values in sorted(scores.items())},
        wrong=wrong,
    )


def sample_data_truths(root: str | os.PathLike, split: str = "valid") -> dict[tuple[str, str], np.ndarray]:
    """True masks of the images of one split of ``drywallqa sample-data`` output, for :func:`attach_truth`.

    Cracks come from the crack dataset's own annotations; taping areas from the generator's truth
    file (the exact tape bands; the dataset itself shows only boxes, like the real export).
    """
    from drywallqa.data.core import AnnotatedDataset
    from drywallqa.data.synthetic import CRACKS_DATASET, JOINTS_DATASET, TRUTH_ANNOTATION_FILE

    root = Path(root)
    datasets = [AnnotatedDataset.load(root / CRACKS_DATASET, quiet=True),
                AnnotatedDataset.load(root / JOINTS_DATASET, annotation_file=TRUTH_ANNOTATION_FILE, quiet=True)]
    return {
        (str(sample.image_path.resolve()), class_name): sample.mask(class_name)
        for dataset in datasets for sample in dataset.split(split) for class_name in dataset.class_names
    }
