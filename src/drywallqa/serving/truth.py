"""A ``predict`` run scored against true masks, where they exist (the quickstart's sample data).

:func:`attach_truth` adds to each record of a run whose image has a true mask of the record's
class a ``truth`` entry, ``{"iou", "truth_pixels", "overlay"}``, and writes the truth overlay
beside the prediction's, so the HTML report shows prediction and truth side by side.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from drywallqa.evaluation.metrics import get_stats, iou_score
from drywallqa.files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_image
from drywallqa.serving.render import jpeg_bytes, read_mask_png, render_overlay
from drywallqa.serving.results import RESULTS_JSONL, json_line, read_results

TRUTH_COLOUR = (40, 170, 60)
TRUTH_DIR = "truth"


def attach_truth(results: str | os.PathLike, truths: dict[tuple[str, str], np.ndarray]) -> dict[str, float]:
    """Score the records of a ``predict`` run against true masks, in place.

    Args:
        results: The run's output folder.
        truths: ``{(resolved image path, class name): (H, W) bool}``; images without one are left alone.

    Returns:
        ``{class name: mean IoU}`` over the records scored (IoU 1 when both masks are empty).
    """
    records, folder = read_results(results)
    scores: dict[str, list[float]] = defaultdict(list)
    for record in records:
        key = (str(Path(record["image"]).resolve()), record.get("class"))
        truth = truths.get(key)
        if truth is None:
            continue
        predicted = read_mask_png(folder / record["mask"])
        iou = iou_score(*get_stats(predicted, truth))
        name = Path(record["mask"]).stem
        overlay = render_overlay(read_image(record["image"]), truth, TRUTH_COLOUR)
        atomic_write_bytes(folder / TRUTH_DIR / f"{name}.jpg", jpeg_bytes(overlay, quality=85))
        record["truth"] = {"iou": iou, "truth_pixels": int(truth.sum()), "overlay": f"{TRUTH_DIR}/{name}.jpg"}
        atomic_write_json(folder / "records" / f"{name}.json", record, indent=1)
        scores[record["class"]].append(iou)
    atomic_write_text(folder / RESULTS_JSONL, "".join(json_line(r) for r in records))
    return {name: float(np.mean(values)) for name, values in sorted(scores.items())}


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
