"""Batch prediction over image files: masks, overlays, QA figures, and their tables.

:func:`predict_images` writes, into an output folder::

    masks/<image>__<prompt>.png       0/255 single-channel mask at the image's size
    overlays/<image>__<prompt>.jpg    the mask tinted and outlined on the image
    records/<image>__<prompt>.json    one record: figures, verdict, paths, settings
    results.jsonl                     every record of this run, one per line, in input order
    results.csv                       the same, flattened (figures as columns)
    coco.json                         COCO instances, one RLE annotation per mask component
    summary.json                      counts, settings and skipped files
    run.json                          what made the masks: model, runtime, threshold, TTA, prompts

The work runs as a bounded pipeline: worker threads decode the photos (at most ``workers`` in
flight), a :class:`~drywallqa.serving.batching.MicroBatcher` runs the model on batches of the
pairs they submit, and the same threads measure, encode and write each pair while the model works
on the next batch. Overlays and ``coco.json`` are optional (``overlays=False``, ``coco=False``).

Each file is written atomically and the record last, so an interrupted run leaves either a
complete image/prompt output or none; a rerun skips image/prompt pairs whose record, mask and
overlay exist and were made by the same model at the same threshold (the figures and verdict of a
skipped pair are measured again from its saved mask, so a new ``--mm-per-px`` or thresholds file
takes effect without predicting again). A rerun whose model, runtime, threshold, test-time flips
or prompts differ from those in ``run.json`` is refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError, ImageSizeError, IssueLog
from drywallqa.files import (
    IMAGE_SUFFIXES,
    Photo,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    list_images,
    read_json,
    read_photo,
)
from drywallqa.inference import Predictor, check_prompt
from drywallqa.processing import prompt_threshold
from drywallqa.serving.batching import MicroBatcher
from drywallqa.serving.qa import MaskInspection, inspect_mask, prompt_class, unknown_prompt_message
from drywallqa.serving.render import (
    FIGURE_SET_COLOURS,
    jpeg_bytes,
    mask_png_bytes,
    read_mask_png,
    render_overlay,
)
from drywallqa.serving.thresholds import QAThresholds

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
COCO_FILE = "coco.json"
SUMMARY_FILE = "summary.json"
# Leading CSV columns; figure columns follow in the order QAFigures.to_dict() gives them.
CSV_COLUMNS = ("image", "prompt", "class", "figure_set", "verdict", "severity", "reasons")
CSV_TRAILING_COLUMNS = ("mask", "overlay", "image_width", "image_height", "model", "threshold", "mm_per_px")
OVERLAY_QUALITY = 90


@dataclass
class PredictionRun:
    """What :func:`predict_images` did.

    Attributes:
        out: The output folder.
        records: One JSON-ready record per image and prompt, in input order.
        images: Images that were read (predicted or resumed).
        predicted: Image/prompt pairs predicted in this run.
        resumed: Image/prompt pairs whose outputs were already there.
        issues: Skipped images (unreadable files), with reasons.
        files: Paths of ``results.jsonl``, ``results.csv``, ``coco.json`` (when written) and
            ``summary.json``.
        coco_parts: Per record, its COCO annotations when measured from the mask in memory
            (:func:`mask_annotations`); :func:`records_to_coco` reads the masks otherwise.
        coco: Whether :func:`write_tables` writes ``coco.json``.
        model_calls: Batched model calls made for the pairs predicted.
    """

    out: Path
    records: list[dict] = field(default_factory=list)
    images: int = 0
    predicted: int = 0
    resumed: int = 0
    issues: IssueLog = field(default_factory=lambda: IssueLog(quiet=True))
    files: dict[str, Path] = field(default_factory=dict)
    coco_parts: list = field(default_factory=list, repr=False)
    coco: bool = True
    model_calls: int = 0

    def verdict_counts(self) -> dict[str, int]:
        """Records per verdict: ``{"fail": n, "pass": n, "unchecked": n}``."""
        counts = {"fail": 0, "pass": 0, "unchecked": 0}
        for record in self.records:
            counts[record["verdict"]] = counts.get(record["verdict"], 0) + 1
        return counts

    def __repr__(self) -> str:
        return (
            f"PredictionRun({str(self.out)!r}, images={self.images}, records={len(self.records)}, "
            f"predicted={self.predicted}, resumed={self.resumed}, skipped={len(self.issues)}, {self.verdict_counts()})"
        )


# -- inputs ---------------------------------------------------------------------------------------
def collect_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (their image files, not recursive) and glob patterns, in order.

    Duplicates are dropped. A file named explicitly is kept whatever its suffix (an unreadable one
    is reported when it is read); folders and globs contribute image suffixes only.

    Raises:
        DataError: If a path does not exist, a glob matches nothing, or nothing is found at all.
    """
    images: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = list_images(path)
        elif path.is_file():
            found = [path]
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise DataError(f"{text}: the pattern matches no file")
            found = [Path(m) for m in matches if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES]
        else:
            raise DataError(f"{text}: no such file or folder")
        images.extend(found)
    unique = list(dict.fromkeys(p.resolve() for p in images))
    if not unique:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return unique


def check_output_dir(out: str | os.PathLike, images: Sequence[Path], inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder that would put outputs among the inputs.

    Args:
        out: The output folder.
        images: Resolved input images.
        inputs: The input arguments (folders among them must differ from ``out``).

    Returns:
        ``out`` resolved.

    Raises:
        ConfigError: If ``out`` is a file, equals an input folder, or contains an input image.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the outputs")
    for item in inputs:
        if Path(item).is_dir() and Path(item).resolve() == out:
            raise ConfigError(f"--out {out} is the input folder {item}; choose a folder outside the inputs so they are never overwritten")
    for image in images:
        if out == image or out in image.parents:
            raise ConfigError(f"--out {out} contains the input {image}; choose a folder outside the inputs so they are never overwritten")
    return out


def output_keys(images: Sequence[Path]) -> dict[Path, str]:
    """File-name key of each image: its stem, plus a hash of its path when stems collide."""
    stems = {image: _safe_name(image.stem) for image in images}
    counts = Counter(stem.lower() for stem in stems.values())
    return {image: stem + (f"-{_short_hash(str(image))}" if counts[stem.lower()] > 1 else "") for image, stem in stems.items()}


def prompt_slugs(prompts: Sequence[str]) -> dict[str, str]:
    """File-name part of each prompt: lower-case words joined by ``-``, plus a hash when slugs collide."""
    slugs = {p: re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-")[:48] or "prompt" for p in prompts}
    counts = Counter(slugs.values())
    return {p: slug + (f"-{_short_hash(p)}" if counts[slug] > 1 else "") for p, slug in slugs.items()}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


# -- prediction -----------------------------------------------------------------------------------
def predict_images(
    inputs: Sequence[str | os.PathLike],
    prompts: Sequence[str],
    out: str | os.PathLike,
    predictor: Predictor,
    *,
    model_id: str = "default",
    mm_per_px: float | None = None,
    thresholds: QAThresholds | None = None,
    prompt_config: PromptConfig | None = None,
    progress: bool = False,
    overwrite: bool = False,
    overlays: bool = True,
    coco: bool = True,
    workers: int | None = None,
) -> PredictionRun:
    """Segment every input image with every prompt and write masks, overlays, figures and tables.

    Args:
        inputs: Image files, folders of images and glob patterns.
        prompts: One or more prompts, each applied to every image.
        out: Output folder (created); must not be or contain an input.
        predictor: The model, e.g. from :func:`drywallqa.inference.load_predictor`.
        model_id: Name of the model recorded in each record and in ``run.json``.
        mm_per_px: Image scale in millimetres per pixel, for millimetre figures and rules.
        thresholds: Figure sets and pass/fail rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        progress: Show a progress bar on stderr.
        overwrite: Predict every pair again when ``out`` holds a run made with other settings
            (model, runtime, threshold, test-time flips or prompts: see :data:`RUN_FILE`);
            without it such a folder is refused.
        overlays: Write ``overlays/`` (about a fifth of the CPU time of a pair's outputs).
        coco: Write ``coco.json`` (one RLE annotation per mask component).
        workers: Photos in flight at once (decoded, waiting for the model, or being measured and
            written); twice the predictor's batch size, at least 8, by default. Bounds the memory
            of a run.

    Returns:
        The records and counts. Unreadable images, and images under
        :data:`~drywallqa.files.MIN_IMAGE_SIDE` or over
        :data:`~drywallqa.files.MAX_DECODE_PIXELS`, are reported with one warning line each on
        stderr, counted in ``issues`` and left out; the others go on. Large photos are decoded
        reduced (:func:`~drywallqa.files.read_photo`). A prompt that names no known class gets one
        warning line (its masks are ``unchecked``).

    Raises:
        ConfigError: For a bad prompt, scale or output folder, or a folder of a run with other
            settings (without ``overwrite``).
        DataError: If an input does not exist, or no image could be read.
        DrywallQAError: If the output folder cannot be written.
    """
    prompts = list(dict.fromkeys(check_prompt(p) for p in prompts))
    if not prompts:
        raise ConfigError("give at least one --prompt, e.g. --prompt 'segment crack'")
    if mm_per_px is not None and not (np.isfinite(mm_per_px) and mm_per_px > 0):
        raise ConfigError(f"--mm-per-px must be a positive number, got {mm_per_px}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    thresholds = thresholds or QAThresholds.default()
    prompt_config = prompt_config or PromptConfig.default()
    images = collect_images(inputs)
    out = check_output_dir(out, images, inputs)
    settings = run_settings(predictor, model_id, prompts)
    fresh = _claim_output_dir(out, settings, overwrite)
    for prompt in prompts:
        if prompt_class(prompt, prompt_config) is None:
            _warn(f"warning: {unknown_prompt_message(prompt, prompt_config)}", progress)
    batch_size = int(getattr(predictor, "batch_size", 8) or 8)
    workers = int(workers or max(8, 2 * batch_size))
    run = PredictionRun(out, coco=coco)
    # Each prompt's threshold: its class's calibrated one, or the predictor's one for all.
    job = _PairJob(out, prompts, output_keys(images), prompt_slugs(prompts), model_id,
                   {p: prompt_threshold(predictor, p) for p in prompts}, mm_per_px, thresholds, prompt_config, fresh,
                   overlays, coco)

    from tqdm import tqdm

    bar = tqdm(total=len(images), unit="image", desc="predict", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    done: dict[int, list[tuple[dict, list | None, bool]]] = {}
    # Reader -> batched model -> writer: each worker decodes a photo, submits its pairs to the
    # model thread and measures and writes them when they come back, while the model runs the
    # next batch; at most `workers` photos are in flight.
    with MicroBatcher(predictor, max_batch=batch_size, max_queued=workers * len(prompts)) as batcher, \
            ThreadPoolExecutor(workers, thread_name_prefix="drywallqa-predict") as pool:
        futures = {pool.submit(job.image, path, batcher): index for index, path in enumerate(images)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                outcome = future.result()
                if isinstance(outcome, DataError):
                    reason, detail = _skip_reason(outcome), str(outcome).split(": ", 1)[-1]
                    run.issues.skip(images[index], "", reason, detail)
                    _warn(f"warning: skipped {images[index]}: {reason} ({detail})", progress)
                else:
                    done[index] = outcome
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
    run.model_calls = batcher.stats.calls
    for index in sorted(done):
        for record, parts, predicted in done[index]:
            run.records.append(record)
            run.coco_parts.append(parts)
            run.predicted += predicted
            run.resumed += not predicted
        run.images += 1
    if run.images == 0:
        raise DataError(f"none of the {len(images)} input image(s) could be read ({len(run.issues)} skipped)")
    run.files = write_tables(run, image_root=_common_folder(images), settings={
        **settings, "mm_per_px": mm_per_px, "thresholds": thresholds.source,
        "unknown_prompts": [p for p in prompts if prompt_class(p, prompt_config) is None],
        "overlays": overlays, "coco": coco,
    })
    return run


@dataclass
class _PairJob:
    """What every image of a run shares, and the work on one image (:meth:`image`, in a worker)."""

    out: Path
    prompts: list[str]
    keys: dict[Path, str]
    slugs: dict[str, str]
    model_id: str
    threshold: dict[str, float]
    mm_per_px: float | None
    thresholds: QAThresholds
    prompt_config: PromptConfig
    fresh: bool
    overlays: bool
    coco: bool

    def image(self, image_path: Path, batcher: MicroBatcher) -> list[tuple[dict, list | None, bool]] | DataError:
        """Every prompt's ``(record, COCO annotations, predicted)`` for one image, or the
        :class:`DataError` that made it unreadable."""
        names = {p: f"{self.keys[image_path]}__{self.slugs[p]}" for p in self.prompts}
        saved = {p: None if self.fresh else _resumable(self.out, names[p], image_path, self.model_id, self.threshold[p],
                                                        self.overlays)
                 for p in self.prompts}
        todo = [p for p in self.prompts if saved[p] is None]
        photo, results = None, {}
        if todo:
            try:
                photo = read_photo(image_path)
            except DataError as exc:
                return exc
            results = dict(zip(todo, batcher.predict([photo.pixels] * len(todo), todo)))
        outcomes = []
        for prompt in self.prompts:
            if prompt in results:
                result = results[prompt]
                record, mask = _write_prediction(
                    self.out, names[prompt], image_path, photo, prompt, result.mask, result.confidence, self.model_id,
                    self.threshold[prompt], self.mm_per_px, self.thresholds, self.prompt_config, overlay=self.overlays)
                outcomes.append((record, mask_annotations(mask, record) if self.coco else None, True))
            else:
                record, mask = _remeasure(self.out, saved[prompt], self.mm_per_px, self.thresholds, self.prompt_config)
                outcomes.append((record, mask_annotations(mask, record) if self.coco else None, False))
        return outcomes


#: The settings of the run that made an output folder's masks (written before the first mask).
RUN_FILE = "run.json"
# Settings a rerun must share to reuse the saved masks (scale and QA rules are measured again).
_RUN_KEYS = ("model", "runtime", "threshold", "class_thresholds", "tta", "prompts")


def run_settings(predictor: Predictor, model_id: str, prompts: Sequence[str]) -> dict:
    """What made the masks of a run: model, runtime, threshold (and calibrated per-class ones), test-time flips, prompts."""
    return {
        "model": model_id, "runtime": getattr(predictor, "name", type(predictor).__name__),
        "threshold": float(getattr(predictor, "threshold", 0.5)),
        "class_thresholds": dict(getattr(predictor, "thresholds", {}) or {}), "tta": getattr(predictor, "views", "none"),
        "prompts": list(prompts),
    }


def _claim_output_dir(out: Path, settings: dict, overwrite: bool) -> bool:
    """Check ``out``'s :data:`RUN_FILE` against this run's settings and write them.

    Returns:
        True when every pair must be predicted (``overwrite`` of a run with other settings).

    Raises:
        ConfigError: If ``out`` holds a run with other settings and ``overwrite`` is off.
        DrywallQAError: If ``out`` cannot be written (before any mask is computed).
    """
    path = out / RUN_FILE
    previous = None
    if path.is_file():
        try:
            previous = read_json(path)
        except DataError:
            previous = None
    changed = []
    if isinstance(previous, dict) and any((out / "records").glob("*.json")):  # no masks yet: nothing to protect
        # A key a run.json does not have yet was its default then (class_thresholds: none).
        defaults = {"class_thresholds": {}}
        changed = [f"{key} {previous.get(key, defaults.get(key))!r} -> {settings[key]!r}" for key in _RUN_KEYS
                   if previous.get(key, defaults.get(key)) != settings[key]]
    if changed and not overwrite:
        raise ConfigError(f"{path}: this folder holds masks made with other settings ({'; '.join(changed)}); "
                          "pass --overwrite to predict them again, or choose another --out")
    atomic_write_json(path, settings, indent=2)
    return bool(changed)


def _skip_reason(exc: DataError) -> str:
    if isinstance(exc, ImageSizeError):
        return "image too large" if exc.too_large else "image too small"
    return "unreadable image"


def _warn(message: str, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr)


def _paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    return out / "masks" / f"{name}.png", out / "overlays" / f"{name}.jpg", out / "records" / f"{name}.json"


def _resumable(out: Path, name: str, image_path: Path, model_id: str, threshold: float,
               overlay: bool = True) -> dict | None:
    """The saved record of an image/prompt pair when its outputs (the overlay when asked for) are
    complete and current."""
    mask_path, overlay_path, record_path = _paths(out, name)
    if not (record_path.is_file() and mask_path.is_file() and (overlay_path.is_file() or not overlay)):
        return None
    try:
        record = read_json(record_path)
    except DataError:
        return None
    same = (
        isinstance(record, dict) and record.get("image") == str(image_path)
        and record.get("model") == model_id and record.get("threshold") == threshold
    )
    return record if same else None


def _inspection_record(inspection: MaskInspection, image_path: Path, width: int, height: int, name: str,
                       model_id: str, threshold: float, mm_per_px: float | None, overlay: str | None) -> dict:
    return {
        "image": str(image_path), **inspection.to_dict(),
        "mask": f"masks/{name}.png", "overlay": overlay,
        "image_width": width, "image_height": height,
        "model": model_id, "threshold": threshold, "mm_per_px": mm_per_px,
    }


def _write_prediction(out: Path, name: str, image_path: Path, photo: Photo, prompt: str, mask: np.ndarray,
                      confidence: float, model_id: str, threshold: float, mm_per_px: float | None,
                      thresholds: QAThresholds, prompt_config: PromptConfig, *, overlay: bool = True
                      ) -> tuple[dict, np.ndarray]:
    """Write the mask, the overlay (when asked for) and the record of one image/prompt pair, the
    record last; returns the record and the mask.

    A photo decoded reduced keeps its mask and overlay at the decoded size; its figures are in the
    file's pixels and the record gives the file's size.
    """
    mask_path, overlay_path, record_path = _paths(out, name)
    inspection = inspect_mask(mask, prompt, confidence=confidence, mm_per_px=mm_per_px, thresholds=thresholds,
                              prompt_config=prompt_config, scale=photo.scale)
    atomic_write_bytes(mask_path, mask_png_bytes(mask))
    if overlay:
        tinted = render_overlay(photo.pixels, mask, FIGURE_SET_COLOURS[inspection.figures.figure_set])
        atomic_write_bytes(overlay_path, jpeg_bytes(tinted, quality=OVERLAY_QUALITY))
    record = _inspection_record(inspection, image_path, photo.width, photo.height, name, model_id, threshold, mm_per_px,
                                f"overlays/{name}.jpg" if overlay else None)
    atomic_write_json(record_path, record, indent=1)
    return record, mask


def _remeasure(out: Path, record: dict, mm_per_px: float | None, thresholds: QAThresholds,
               prompt_config: PromptConfig) -> tuple[dict, np.ndarray]:
    """Figures and verdict of a resumed pair, measured again from its saved mask; returns the
    record and the mask."""
    mask = read_mask_png(out / record["mask"])
    inspection = inspect_mask(mask, record["prompt"], confidence=record["figures"].get("confidence"),
                              mm_per_px=mm_per_px, thresholds=thresholds, prompt_config=prompt_config,
                              scale=record["image_width"] / mask.shape[1])
    name = Path(record["mask"]).stem
    overlay = record.get("overlay") if (out / str(record.get("overlay"))).is_file() else None
    updated = _inspection_record(inspection, Path(record["image"]), record["image_width"], record["image_height"],
                                 name, record["model"], record["threshold"], mm_per_px, overlay)
    if updated != record:
        atomic_write_json(out / "records" / f"{name}.json", updated, indent=1)
    return updated, mask


# -- tables ---------------------------------------------------------------------------------------
def write_tables(run: PredictionRun, image_root: Path, settings: dict) -> dict[str, Path]:
    """Write ``results.jsonl``, ``results.csv``, ``coco.json`` (unless ``run.coco`` is off; an old
    one is then removed) and ``summary.json`` for a run.

    Args:
        run: The run whose records to write.
        image_root: COCO ``file_name`` entries are relative to this folder.
        settings: Recorded in ``summary.json`` (model, threshold, scale, prompts, thresholds file).

    Returns:
        ``{"jsonl": ..., "csv": ..., "coco": ..., "summary": ...}`` (``"coco"`` only when written).
    """
    out = run.out
    files = {
        "jsonl": atomic_write_text(out / RESULTS_JSONL, "".join(_json_line(r) for r in run.records)),
        "csv": atomic_write_text(out / RESULTS_CSV, records_to_csv(run.records)),
    }
    if run.coco:
        parts = run.coco_parts if len(run.coco_parts) == len(run.records) else None
        files["coco"] = atomic_write_json(out / COCO_FILE, records_to_coco(run.records, out, image_root, parts=parts))
    else:
        (out / COCO_FILE).unlink(missing_ok=True)  # one of an earlier run would describe other results
    summary = {
        **settings, "images": run.images, "records": len(run.records), "predicted": run.predicted,
        "resumed": run.resumed, "verdicts": run.verdict_counts(),
        "skipped_images": [{"file": i.file, "reason": i.reason, "detail": i.detail} for i in run.issues.issues],
    }
    files["summary"] = atomic_write_json(out / SUMMARY_FILE, summary, indent=2)
    return files


def _json_line(record: dict) -> str:
    import json

    return json.dumps(record, ensure_ascii=False) + "\n"


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
    Each annotation carries ``score`` (the model's confidence for the mask) and ``attributes``
    (prompt and verdict). ``file_name`` is relative to ``image_root``.

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

    samples, extras, by_image = [], [], {}
    for index, record in enumerate(records):
        by_image.setdefault(record["image"], []).append(index)
    for image, indices in by_image.items():
        annotations = []
        first = records[indices[0]]
        for index in indices:
            record = records[index]
            found = parts[index] if parts is not None and parts[index] is not None else \
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
    return coco


def mask_annotations(mask: np.ndarray, record: dict, min_component_area_px: int = 1) -> list[tuple]:
    """The COCO annotations of one record's mask: ``(Annotation, extra fields)`` per 8-connected component.

    A mask at the file's size gives RLE segmentations; the mask of a photo decoded reduced gives
    polygons scaled to the file's pixels (an RLE would need the full-size mask).
    """
    import cv2
    from scipy.ndimage import find_objects

    from drywallqa.data.core import Annotation
    from drywallqa.data.masks import label_rles

    category = record["class"] or re.sub(r"[^a-z0-9]+", "_", record["prompt"].lower()).strip("_")
    sx, sy = record["image_width"] / mask.shape[1], record["image_height"] / mask.shape[0]
    x0, y0, w0, h0 = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if not (w0 and h0):
        return []
    # Areas and boxes by bincount and find_objects: OpenCV's WithStats labelling costs ten times more.
    n, labels = cv2.connectedComponents(mask[y0 : y0 + h0, x0 : x0 + w0].astype(np.uint8), connectivity=8)
    areas, boxes = np.bincount(labels.ravel(), minlength=n), find_objects(labels)
    rles = label_rles(labels, n - 1, mask.shape, (x0, y0)) if (sx, sy) == (1, 1) else None
    found = []
    for k in range(1, n):
        if areas[k] < min_component_area_px:
            continue
        rows, cols = boxes[k - 1]
        x, y, w, h = x0 + cols.start, y0 + rows.start, cols.stop - cols.start, rows.stop - rows.start
        box = (x * sx, y * sy, (x + w) * sx, (y + h) * sy)
        if rles is not None:
            annotation = Annotation(category, box, rle=rles[k - 1], category=category)
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
                    model_id: str = "default", threshold: float = 0.5, mm_per_px: float | None = None,
                    thresholds: QAThresholds | None = None, prompt_config: PromptConfig | None = None) -> bytes:
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
        thresholds: QA rules; the built-in file by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.

    Returns:
        The zip's bytes.
    """
    import zipfile

    thresholds = thresholds or QAThresholds.default()
    prompt_config = prompt_config or PromptConfig.default()
    images = [Path(item["image"]) for item in items]
    keys, slugs = output_keys(list(dict.fromkeys(images))), prompt_slugs(list(dict.fromkeys(i["prompt"] for i in items)))
    records, parts = [], []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, (item, image, mask) in enumerate(zip(items, images, masks)):
            name = f"{keys[image]}__{slugs[item['prompt']]}"
            inspection = inspect_mask(mask, item["prompt"], confidence=item.get("confidence"), mm_per_px=mm_per_px,
                                      thresholds=thresholds, prompt_config=prompt_config, scale=item["width"] / mask.shape[1])
            overlay = f"overlays/{name}.jpg" if overlays else None
            record = _inspection_record(inspection, image, item["width"], item["height"], name, model_id, threshold,
                                        mm_per_px, overlay)
            archive.writestr(record["mask"], mask_png_bytes(mask), compress_type=zipfile.ZIP_STORED)
            if overlays:
                archive.writestr(overlay, overlays[index], compress_type=zipfile.ZIP_STORED)
            records.append(record)
            parts.append(mask_annotations(mask, record))
        archive.writestr(RESULTS_JSONL, "".join(_json_line(r) for r in records))
        archive.writestr(RESULTS_CSV, records_to_csv(records))
        import json

        archive.writestr(COCO_FILE, json.dumps(records_to_coco(records, Path("."), Path("."), parts=parts)))
    return buffer.getvalue()


def _common_folder(images: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in images]))


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
