"""The tables of a prediction run, and results made elsewhere laid out like a run.

A run's predictions (:class:`~drywallqa.inference.Predictions`) write its tables;
:func:`write_tables` puts ``results.jsonl``, ``results.csv``, ``coco.json`` and ``summary.json``
(with the run's settings and counts) into its folder, and :func:`results_archive` zips results
made elsewhere (the web page) laid out like a ``predict`` folder. :func:`read_results` reads a
run's records back as written (:meth:`~drywallqa.inference.Predictions.read` as predictions).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.files import atomic_write_json, atomic_write_text
from drywallqa.inference.prediction import Prediction
from drywallqa.inference.predictions import (  # noqa: F401  (the file names, and read_results, are the run's)
    COCO_FILE,
    RESULTS_CSV,
    RESULTS_JSONL,
    SUMMARY_FILE,
    Predictions,
    read_results,
)
from drywallqa.inference.render import mask_png_bytes
from drywallqa.paths import output_keys, prompt_slugs
from drywallqa.qa.rules import QARules

if TYPE_CHECKING:
    from drywallqa.serving.predict import PredictionRun


def counts_line(counts: dict[str, int]) -> str:
    """``"10 fail, 10 pass, 0 not found, 0 unchecked"``."""
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items())


def write_tables(run: PredictionRun, image_root: Path, settings: dict) -> dict[str, Path]:
    """Write ``results.jsonl``, ``results.csv``, ``coco.json`` (unless ``run.coco`` is off; an old
    one is then removed) and ``summary.json`` for a run, from its predictions.

    Args:
        run: The run whose predictions to write.
        image_root: COCO ``file_name`` entries are relative to this folder.
        settings: Recorded in ``summary.json`` (model, threshold, scale, prompts, QA rules file).

    Returns:
        ``{"jsonl": ..., "csv": ..., "coco": ..., "summary": ...}`` (``"coco"`` only when written).
    """
    out, predictions = run.out, run.predictions
    files = {
        "jsonl": atomic_write_text(out / RESULTS_JSONL, predictions.to_jsonl()),
        "csv": atomic_write_text(out / RESULTS_CSV, predictions.to_csv()),
    }
    if run.coco:
        files["coco"] = atomic_write_json(out / COCO_FILE, predictions.to_coco(image_root))
    else:
        (out / COCO_FILE).unlink(missing_ok=True)  # one of an earlier run would describe other results
    counts = predictions.summary()
    summary = {
        "photo_verdicts": counts["photo_verdicts"], **settings, "images": run.images, "records": counts["records"],
        "predicted": run.predicted, "resumed": run.resumed, "verdicts": counts["verdicts"],
        "skipped_images": [{"file": i.file, "reason": i.reason, "detail": i.detail} for i in run.issues.issues],
    }
    files["summary"] = atomic_write_json(out / SUMMARY_FILE, summary, indent=2)
    return files


def results_archive(items: Sequence[dict], masks: Sequence[np.ndarray], overlays: Sequence[bytes] | None = None, *,
                    model_id: str = "default", threshold: float | None = 0.5, mm_per_px: float | None = None,
                    qa_rules: QARules | None = None, prompt_config: PromptConfig | None = None) -> bytes:
    """Results made elsewhere (the web page, one upload at a time) as a zip laid out like a
    ``predict`` folder: ``masks/``, ``overlays/``, ``results.jsonl``, ``results.csv``, ``coco.json``.

    Figures and verdicts are measured again from the masks, so the tables are exactly what
    ``predict`` would write for them.

    Args:
        items: One per mask: ``image`` (file name or relative path), ``prompt``, ``width`` and
            ``height`` (the image file's size) and ``confidence``.
        masks: ``(h, w)`` bool masks, at the image's size or at its decoded (reduced) size.
        overlays: JPEG bytes per mask, or None.
        model_id: Recorded in each record.
        threshold: Recorded in each record.
        mm_per_px: Image scale, for millimetre figures and rules.
        qa_rules: QA rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.

    Returns:
        The zip's bytes.
    """
    import json
    import zipfile

    qa_rules = qa_rules or QARules.default()
    prompt_config = prompt_config or PromptConfig.default()
    images = [Path(item["image"]) for item in items]
    keys, slugs = output_keys(list(dict.fromkeys(images))), prompt_slugs(list(dict.fromkeys(i["prompt"] for i in items)))
    predictions = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, (item, image, mask) in enumerate(zip(items, images, masks)):
            name = f"{keys[image]}__{slugs[item['prompt']]}"
            prediction = Prediction.measure(mask, item["prompt"], image=image, image_size=(item["width"], item["height"]),
                                            confidence=item.get("confidence"), model=model_id, threshold=threshold,
                                            mm_per_px=mm_per_px, qa_rules=qa_rules, prompt_config=prompt_config)
            prediction = replace(prediction, mask_file=f"masks/{name}.png",
                                 overlay_file=f"overlays/{name}.jpg" if overlays else None)
            archive.writestr(prediction.mask_file, mask_png_bytes(mask), compress_type=zipfile.ZIP_STORED)
            if overlays:
                archive.writestr(prediction.overlay_file, overlays[index], compress_type=zipfile.ZIP_STORED)
            predictions.append(prediction)
        run = Predictions(predictions)
        archive.writestr(RESULTS_JSONL, run.to_jsonl())
        archive.writestr(RESULTS_CSV, run.to_csv())
        archive.writestr(COCO_FILE, json.dumps(run.to_coco(Path(".")), allow_nan=False))
    return buffer.getvalue()
