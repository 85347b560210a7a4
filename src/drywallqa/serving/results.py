"""Results of a prediction run: the record of one mask, and the tables made from records.

A record (:func:`inspection_record`) holds a mask's figures, verdict, file paths and settings;
:func:`with_photo_verdicts` adds to each its photo's verdict (:func:`~drywallqa.qa.photo_verdict`
of the photo's records); :func:`write_tables` writes a run's ``results.jsonl``, ``results.csv``, ``coco.json`` and
``summary.json``, :func:`read_results` reads them back, and :func:`results_archive` zips results
made elsewhere (the web page) laid out like a ``predict`` folder.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import DataError
from drywallqa.files import atomic_write_json, atomic_write_text
from drywallqa.serving.inputs import output_keys, prompt_slugs
from drywallqa.qa.inspection import MaskInspection, inspect_mask
from drywallqa.serving.render import mask_png_bytes, read_mask_png
from drywallqa.qa.rules import VERDICTS, QARules, photo_verdict

if TYPE_CHECKING:
    from drywallqa.serving.predict import PredictionRun

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
COCO_FILE = "coco.json"
SUMMARY_FILE = "summary.json"
# Leading CSV columns; figure columns follow in the order QAFigures.to_dict() gives them.
CSV_COLUMNS = ("image", "photo_verdict", "prompt", "class", "figure_set", "verdict", "severity", "reasons")
CSV_TRAILING_COLUMNS = ("mask", "overlay", "image_width", "image_height", "image_orientation", "model", "threshold",
                        "mm_per_px")


def inspection_record(inspection: MaskInspection, image_path: Path, width: int, height: int, name: str,
                       model_id: str, threshold: float | None, mm_per_px: float | None, overlay: str | None,
                       orientation: int | None = None) -> dict:
    """One mask's record; ``width``, ``height`` and mask are the photo as shown, turned by the EXIF
    ``orientation`` given (None: not known, e.g. results made elsewhere)."""
    return json_ready({
        "image": str(image_path), **inspection.to_dict(),
        "mask": f"masks/{name}.png", "overlay": overlay,
        "image_width": width, "image_height": height, "image_orientation": orientation,
        "model": model_id, "threshold": threshold, "mm_per_px": mm_per_px,
    })


def json_ready(value):
    """``value`` with every NaN or infinite float replaced by None (JSON ``null``): results are
    standard JSON, which every reader parses (``NaN`` and ``Infinity`` are not JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


# -- verdicts -------------------------------------------------------------------------------------
def photo_verdicts(records: Sequence[dict]) -> dict[str, str]:
    """``{image: photo verdict}``: each image's prompts' verdicts combined (:func:`~drywallqa.qa.photo_verdict`)."""
    by_image: dict[str, list[str]] = {}
    for record in records:
        by_image.setdefault(str(record["image"]), []).append(record["verdict"])
    return {image: photo_verdict(verdicts) for image, verdicts in by_image.items()}


def with_photo_verdicts(records: Sequence[dict]) -> list[dict]:
    """The records, each with ``photo_verdict`` (its photo's verdict) right after ``image``."""
    verdicts = photo_verdicts(records)
    return [{"image": r["image"], "photo_verdict": verdicts[str(r["image"])],
             **{k: v for k, v in r.items() if k not in ("image", "photo_verdict")}} for r in records]


def verdict_counts(records: Sequence[dict], per_photo: bool = False) -> dict[str, int]:
    """Records (or, with ``per_photo``, photos) per verdict, every verdict of :data:`~drywallqa.qa.VERDICTS` listed."""
    counts = dict.fromkeys(VERDICTS, 0)
    for verdict in (photo_verdicts(records).values() if per_photo else (r["verdict"] for r in records)):
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def counts_line(counts: dict[str, int]) -> str:
    """``"10 fail, 10 pass, 0 not found, 0 unchecked"``."""
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items())


# -- tables ---------------------------------------------------------------------------------------
def write_tables(run: PredictionRun, image_root: Path, settings: dict) -> dict[str, Path]:
    """Write ``results.jsonl``, ``results.csv``, ``coco.json`` (unless ``run.coco`` is off; an old
    one is then removed) and ``summary.json`` for a run.

    Args:
        run: The run whose records to write.
        image_root: COCO ``file_name`` entries are relative to this folder.
        settings: Recorded in ``summary.json`` (model, threshold, scale, prompts, QA rules file).

    Returns:
        ``{"jsonl": ..., "csv": ..., "coco": ..., "summary": ...}`` (``"coco"`` only when written).
    """
    out = run.out
    files = {
        "jsonl": atomic_write_text(out / RESULTS_JSONL, "".join(json_line(r) for r in run.records)),
        "csv": atomic_write_text(out / RESULTS_CSV, records_to_csv(run.records)),
    }
    if run.coco:
        parts = run.coco_parts if len(run.coco_parts) == len(run.records) else None
        coco = records_to_coco(run.records, out, image_root, parts=parts)
        files["coco"] = atomic_write_json(out / COCO_FILE, json_ready(coco))
    else:
        (out / COCO_FILE).unlink(missing_ok=True)  # one of an earlier run would describe other results
    summary = {
        "photo_verdicts": run.photo_verdict_counts(), **settings, "images": run.images, "records": len(run.records),
        "predicted": run.predicted, "resumed": run.resumed, "verdicts": run.verdict_counts(),
        "skipped_images": [{"file": i.file, "reason": i.reason, "detail": i.detail} for i in run.issues.issues],
    }
    files["summary"] = atomic_write_json(out / SUMMARY_FILE, json_ready(summary), indent=2)
    return files


def json_line(record: dict) -> str:
    import json

    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"  # records are json_ready


def records_to_csv(records: Sequence[dict]) -> str:
    """Flatten records to CSV: fixed leading columns, one column per figure, then paths and settings."""
    figure_columns: list[str] = []
    for record in records:
        figure_columns.extend(k for k in record["figures"] if k not in figure_columns)
    columns = [*CSV_COLUMNS, *figure_columns, *CSV_TRAILING_COLUMNS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: record.get(k) for k in (*CSV_COLUMNS, *CSV_TRAILING_COLUMNS)}
        row["reasons"] = "; ".join(record.get("reasons") or [])
        row.update(record["figures"])
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def records_to_coco(records: Sequence[dict], out: Path, image_root: Path, min_component_area_px: int = 1,
                    parts: Sequence[list | None] | None = None) -> dict:
    """COCO instances for annotation tools (CVAT, Label Studio): one RLE annotation per mask component.

    Categories are the prompt classes (an unknown prompt becomes a category of its own name).
    Each image carries its ``photo_verdict``, and ``info`` the count of photos per verdict
    (``photo_verdicts``). Each annotation carries ``score`` (the model's confidence for the mask)
    and ``attributes`` (prompt and verdict). ``file_name`` is relative to ``image_root``.

    Args:
        records: Prediction records.
        out: Folder their ``mask`` paths are relative to.
        image_root: Folder ``file_name`` entries are relative to.
        min_component_area_px: Smaller components are left out.
        parts: Per record, :func:`mask_annotations` of its mask already measured (None entries,
            or no ``parts``, read the mask from ``out``).
    """
    from drywallqa.data.core import Sample
    from drywallqa.data.formats.coco import samples_to_coco

    samples, extras = [], []
    by_image: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_image.setdefault(record["image"], []).append(index)
    for image, indices in by_image.items():
        annotations = []
        first = records[indices[0]]
        for index in indices:
            record = records[index]
            given = parts[index] if parts is not None else None
            found = given if given is not None else \
                mask_annotations(read_mask_png(out / record["mask"]), record, min_component_area_px)
            for annotation, extra in found:
                annotations.append(annotation)
                extras.append(extra)
        samples.append(Sample(Path(image), first["image_width"], first["image_height"], "", "", "", tuple(annotations)))
    classes = sorted({a.class_name for s in samples for a in s.annotations}
                     | {r["class"] for r in records if r["class"]})
    coco = samples_to_coco(samples, image_root, class_names=classes, description="drywallqa predict")
    for annotation, extra in zip(coco["annotations"], extras):
        annotation.update(extra)
    verdicts = photo_verdicts(records)
    coco["info"]["photo_verdicts"] = verdict_counts(records, per_photo=True)
    for entry, image in zip(coco["images"], by_image):
        entry["photo_verdict"] = verdicts[str(image)]
    return coco


def mask_annotations(mask: np.ndarray, record: dict, min_component_area_px: int = 1) -> list[tuple]:
    """The COCO annotations of one record's mask: ``(Annotation, extra fields)`` per 8-connected component.

    A mask at the file's size gives RLE segmentations; the mask of a photo decoded reduced gives
    polygons scaled to the file's pixels (an RLE would need the full-size mask).
    """
    import cv2
    from scipy.ndimage import find_objects

    from drywallqa.data.core import Annotation
    from drywallqa.data.masks import component_rle

    category = record["class"] or re.sub(r"[^a-z0-9]+", "_", record["prompt"].lower()).strip("_")
    sx, sy = record["image_width"] / mask.shape[1], record["image_height"] / mask.shape[0]
    x0, y0, w0, h0 = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if not (w0 and h0):
        return []
    # Areas and boxes by bincount and find_objects: OpenCV's WithStats labelling costs ten times more.
    n, labels = cv2.connectedComponents(mask[y0 : y0 + h0, x0 : x0 + w0].astype(np.uint8), connectivity=8)
    areas, boxes = np.bincount(labels.ravel(), minlength=n), find_objects(labels)
    found = []
    for k in range(1, n):
        if areas[k] < min_component_area_px:
            continue
        rows, cols = boxes[k - 1]
        x, y, w, h = x0 + cols.start, y0 + rows.start, cols.stop - cols.start, rows.stop - rows.start
        box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
        if (sx, sy) == (1, 1):  # encoded one kept component at a time: memory of its box, never H x W x components
            annotation = Annotation(category, box, rle=component_rle(labels[rows, cols] == k, mask.shape, (x, y)),
                                    category=category)
        else:
            contours = cv2.findContours((labels == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                        offset=(x0, y0))[0]
            polygons = tuple(c.reshape(-1, 2) * (sx, sy) for c in contours if len(c) >= 3)
            if not polygons:
                continue
            annotation = Annotation(category, box, polygons=polygons, category=category)
        found.append((annotation, {
            "area": round(float(areas[k]) * sx * sy), "score": record["figures"].get("confidence"),
            "attributes": {"prompt": record["prompt"], "verdict": record["verdict"]},
        }))
    return found


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
    import zipfile

    qa_rules = qa_rules or QARules.default()
    prompt_config = prompt_config or PromptConfig.default()
    images = [Path(item["image"]) for item in items]
    keys, slugs = output_keys(list(dict.fromkeys(images))), prompt_slugs(list(dict.fromkeys(i["prompt"] for i in items)))
    records, parts = [], []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, (item, image, mask) in enumerate(zip(items, images, masks)):
            name = f"{keys[image]}__{slugs[item['prompt']]}"
            inspection = inspect_mask(mask, item["prompt"], confidence=item.get("confidence"), mm_per_px=mm_per_px,
                                      qa_rules=qa_rules, prompt_config=prompt_config, scale=item["width"] / mask.shape[1])
            overlay = f"overlays/{name}.jpg" if overlays else None
            record = inspection_record(inspection, image, item["width"], item["height"], name, model_id, threshold,
                                        mm_per_px, overlay)
            archive.writestr(record["mask"], mask_png_bytes(mask), compress_type=zipfile.ZIP_STORED)
            if overlays and overlay is not None:
                archive.writestr(overlay, overlays[index], compress_type=zipfile.ZIP_STORED)
            records.append(record)
            parts.append(mask_annotations(mask, record))
        records = with_photo_verdicts(records)
        archive.writestr(RESULTS_JSONL, "".join(json_line(r) for r in records))
        archive.writestr(RESULTS_CSV, records_to_csv(records))
        import json

        archive.writestr(COCO_FILE, json.dumps(json_ready(records_to_coco(records, Path("."), Path("."), parts=parts)),
                                               allow_nan=False))
    return buffer.getvalue()


def read_results(path: str | os.PathLike) -> tuple[list[dict], Path]:
    """Read the records of a prediction run.

    Args:
        path: A ``predict`` output folder, or its ``results.jsonl``.

    Returns:
        ``(records, folder)``; mask and overlay paths in records are relative to ``folder``.

    Raises:
        DataError: If the file is missing or a line is not a JSON record.
    """
    import json

    path = Path(path)
    file = path / RESULTS_JSONL if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"{file}: no such results file; give a `drywallqa predict` output folder or its {RESULTS_JSONL}")
    records = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{file}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not {"image", "prompt", "figures", "verdict"} <= set(record):
            raise DataError(f"{file}: line {number} is not a prediction record (needs image, prompt, figures, verdict)")
        records.append(record)
    return records, file.parent
