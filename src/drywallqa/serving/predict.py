"""Batch prediction over image files: masks, overlays, QA figures, and their tables.

:func:`predict_images` writes, into an output folder::

    masks/<image>__<prompt>.png       0/255 single-channel mask at the image's size
    overlays/<image>__<prompt>.jpg    the mask tinted and outlined on the image
    records/<image>__<prompt>.json    one record: figures, verdict, paths, settings
    results.jsonl                     every record of this run, one per line, in input order, each
                                      with its photo's verdict (``photo_verdict``: every prompt's
                                      verdict combined, :func:`~drywallqa.qa.photo_verdict`)
    results.csv                       the same, flattened (figures as columns)
    coco.json                         COCO instances, one RLE annotation per mask component
    summary.json                      counts (photos and masks per verdict), settings, skipped files
    run.json                          what made the masks: model, runtime, threshold, TTA, prompts

The work runs as a bounded pipeline: worker threads decode the photos (at most ``workers`` in
flight), a :class:`~drywallqa.serving.batching.MicroBatcher` runs the model on batches of the
pairs they submit, and the same threads measure, encode and write each pair while the model works
on the next batch. Overlays and ``coco.json`` are optional (``overlays=False``, ``coco=False``).

Each file is written atomically and the record last, so an interrupted run leaves either a
complete image/prompt output or none; a rerun skips image/prompt pairs whose record, mask and
overlay exist and were made by the same model at the same threshold (the figures and verdict of a
skipped pair are measured again from its saved mask, so a new ``--mm-per-px`` or QA rules file
takes effect without predicting again). A rerun whose model (its name, or the hash of its weight
files), runtime, threshold, test-time flips or prompts differ from those in ``run.json`` is
refused unless ``overwrite`` is given, and so is a ``run.json`` that is not one.

The names of inputs and outputs come from :mod:`drywallqa.serving.inputs`; each pair's outputs
are written from its :class:`~drywallqa.inference.Prediction` (:meth:`~drywallqa.inference.Prediction.save`),
the tables from the run's :class:`~drywallqa.inference.Predictions` (:mod:`drywallqa.serving.results`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from drywallqa.console import progress_bar
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError, ImageSizeError, IssueLog
from drywallqa.files import Photo, atomic_write_json, read_json, read_photo
from drywallqa.image_codecs import HeifSupportMissing
from drywallqa.inference import Prediction, Predictions, Predictor, check_prompt, weights_digest
from drywallqa.inference.predictions import common_folder
from drywallqa.processing import prompt_threshold
from drywallqa.qa.figures import check_mm_per_px
from drywallqa.qa.inspection import prompt_class, unknown_prompt_message
from drywallqa.qa.rules import QARules
from drywallqa.serving.batching import MicroBatcher
from drywallqa.serving.inputs import check_output_dir, collect_images, output_keys, prompt_slugs
from drywallqa.serving.results import write_tables


@dataclass
class PredictionRun:
    """What :func:`predict_images` did.

    Attributes:
        out: The output folder.
        predictions: One per image and prompt, in input order, each with its photo's verdict (masks
            on disk, not in memory).
        images: Images that were read (predicted or resumed).
        predicted: Image/prompt pairs predicted in this run.
        resumed: Image/prompt pairs whose outputs were already there.
        issues: Skipped images (unreadable files), with reasons.
        files: Paths of ``results.jsonl``, ``results.csv``, ``coco.json`` (when written) and
            ``summary.json``.
        coco: Whether :func:`~drywallqa.serving.results.write_tables` writes ``coco.json``.
        model_calls: Batched model calls made for the pairs predicted.
        settings: What ``summary.json`` records about the run's settings (model, weights,
            runtime, thresholds, test-time flips, prompts, scale, rules file).
    """

    out: Path
    predictions: Predictions = field(default_factory=Predictions)
    images: int = 0
    predicted: int = 0
    resumed: int = 0
    issues: IssueLog = field(default_factory=lambda: IssueLog(quiet=True))
    files: dict[str, Path] = field(default_factory=dict)
    coco: bool = True
    model_calls: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def records(self) -> list[dict]:
        """The records of ``results.jsonl`` (:meth:`~drywallqa.inference.Predictions.to_dicts`)."""
        return self.predictions.to_dicts()

    def verdict_counts(self) -> dict[str, int]:
        """Records (image/prompt pairs) per verdict: ``{"fail": n, "pass": n, "not found": n, "unchecked": n}``."""
        return self.predictions.verdict_counts()

    def photo_verdict_counts(self) -> dict[str, int]:
        """Photos per photo verdict (their prompts' verdicts combined), keyed as :meth:`verdict_counts`."""
        return self.predictions.verdict_counts(per_photo=True)

    def __repr__(self) -> str:
        return (
            f"PredictionRun({str(self.out)!r}, images={self.images}, records={len(self.predictions)}, "
            f"predicted={self.predicted}, resumed={self.resumed}, skipped={len(self.issues)}, "
            f"photos {self.photo_verdict_counts()})"
        )


# -- prediction -----------------------------------------------------------------------------------
def predict_images(
    inputs: Sequence[str | os.PathLike],
    prompts: Sequence[str],
    out: str | os.PathLike,
    predictor: Predictor,
    *,
    model_id: str = "default",
    mm_per_px: float | None = None,
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    progress: bool = False,
    overwrite: bool = False,
    overlays: bool = True,
    coco: bool = True,
    workers: int | None = None,
    part: RunPart | None = None,
) -> PredictionRun:
    """Segment every input image with every prompt and write masks, overlays, figures and tables.

    Args:
        inputs: Image files, folders of images and glob patterns.
        prompts: One or more prompts, each applied to every image.
        out: Output folder (created); must not be or contain an input.
        predictor: The model, e.g. from :func:`drywallqa.inference.load_predictor`.
        model_id: Name of the model recorded in each record and in ``run.json``.
        mm_per_px: Image scale in millimetres per pixel, for millimetre figures and rules.
        qa_rules: Figure sets and pass/fail rules; the built-in ``qa-rules.yaml`` by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default. The predictor
            looks a prompt's class up in it too (:meth:`~drywallqa.inference.Predictor.set_prompt_config`),
            for its calibrated per-class thresholds.
        progress: Show a progress bar on stderr.
        overwrite: Predict every pair again when ``out`` holds a run made with other settings
            (model, runtime, threshold, test-time flips or prompts: see :data:`RUN_FILE`);
            without it such a folder is refused.
        overlays: Write ``overlays/`` (about a fifth of the CPU time of a pair's outputs).
        coco: Write ``coco.json`` (one RLE annotation per mask component).
        workers: Photos in flight at once (decoded, waiting for the model, or being measured and
            written); twice the predictor's batch size, at least 8, by default. Bounds the memory
            of a run.
        part: When these inputs are one part of a larger run (a Ray worker's batch), the whole
            run's output names; the tables, ``summary.json`` and the run's warnings are then left
            to the driver (``run.settings`` says what it records), and ``overwrite`` predicts every
            pair of the part again (the driver cannot tell before its workers load the model
            whether the settings changed).

    Returns:
        The records (each with its ``photo_verdict``) and counts. Unreadable images, and images under
        :data:`~drywallqa.files.MIN_IMAGE_SIDE` or over
        :data:`~drywallqa.files.MAX_DECODE_PIXELS`, are reported with one warning line each on
        stderr, counted in ``issues`` and left out; the others go on. Large photos are decoded
        reduced (:func:`~drywallqa.files.read_photo`). A prompt that names no known class gets one
        warning line (its masks are ``unchecked``).

    Raises:
        ConfigError: For a bad prompt, scale or output folder, a ``required`` QA rule on a class
            that is no prompt class, or a folder of a run with other settings (without ``overwrite``).
        DataError: If an input does not exist, or no image could be read.
        DrywallQAError: If the output folder cannot be written.
    """
    prompts = list(dict.fromkeys(check_prompt(p) for p in prompts))
    if not prompts:
        raise ConfigError("give at least one --prompt, e.g. --prompt 'segment crack'")
    scale_warning = check_mm_per_px(mm_per_px, "--mm-per-px")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    prompt_config = prompt_config or PromptConfig.default()
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    if isinstance(predictor, Predictor):  # its calibrated per-class thresholds follow this run's classes
        predictor.set_prompt_config(prompt_config)
    images = collect_images(inputs)
    out = check_output_dir(out, images, inputs)
    settings = run_settings(predictor, model_id, prompts)
    fresh = _claim_output_dir(out, settings, overwrite) or (part is not None and overwrite)
    unknown = [unknown_prompt_message(p, prompt_config) for p in prompts if prompt_class(p, prompt_config) is None]
    for warning in [] if part is not None else [*unknown, *([scale_warning] if scale_warning else [])]:
        print(f"warning: {warning}", file=sys.stderr)
    batch_size = int(getattr(predictor, "batch_size", 8) or 8)
    workers = int(workers or max(8, 2 * batch_size))
    run = PredictionRun(out, coco=coco)
    # Each prompt's threshold: its class's calibrated one, or the predictor's one for all.
    job = _PairJob(out, prompts, output_keys(images) if part is None else part.keys_of(images), prompt_slugs(prompts),
                   model_id,
                   {p: prompt_threshold(predictor, p) for p in prompts}, mm_per_px, qa_rules, prompt_config, fresh,
                   overlays, coco)

    bar = progress_bar(len(images), "predict", enabled=progress)
    done: dict[int, list[tuple[Prediction, bool]]] = {}
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
                    bar.write(f"warning: skipped {images[index]}: {reason} ({detail})")
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
        run.predicted += sum(predicted for _, predicted in done[index])
        run.resumed += sum(not predicted for _, predicted in done[index])
        run.images += 1
    if run.images == 0:
        raise DataError(f"none of the {len(images)} input image(s) could be read ({len(run.issues)} skipped)")
    run.predictions = Predictions(p for index in sorted(done) for p, _ in done[index]).with_photo_verdicts()
    run.settings = {
        **settings, "mm_per_px": mm_per_px, "qa_rules": qa_rules.source,
        "unknown_prompts": [p for p in prompts if prompt_class(p, prompt_config) is None],
        "overlays": overlays, "coco": coco,
    }
    if part is None:
        run.files = write_tables(run, image_root=common_folder(images), settings=run.settings)
    return run


@dataclass(frozen=True)
class RunPart:
    """What the parts of a run split among workers share: the output name of every image of the
    whole run (:func:`~drywallqa.serving.inputs.output_keys` over all of them), so that names are
    unique across the parts and the same as a local run's.

    Args:
        keys: Output name per resolved image path.
    """

    keys: dict[Path, str]

    def keys_of(self, images: Sequence[Path]) -> dict[Path, str]:
        missing = [str(image) for image in images if image not in self.keys]
        if missing:
            raise ConfigError(f"{missing[0]} is not an input of the run this part belongs to")
        return {image: self.keys[image] for image in images}


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
    qa_rules: QARules
    prompt_config: PromptConfig
    fresh: bool
    overlays: bool
    coco: bool

    def image(self, image_path: Path, batcher: MicroBatcher) -> list[tuple[Prediction, bool]] | DataError:
        """Every prompt's ``(prediction, predicted)`` for one image (saved, its mask out of memory and
        its COCO annotations measured when asked for), or the :class:`DataError` that made it unreadable."""
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
            # The tile scale follows the decoded pixels: a photo decoded reduced has coarser ones.
            scale = self.mm_per_px * photo.scale if self.mm_per_px else None
            results = dict(zip(todo, batcher.predict([photo.pixels] * len(todo), todo, mm_per_px=scale)))
        outcomes = []
        for prompt in self.prompts:
            if prompt in results:
                # A photo decoded reduced keeps its mask and overlay at the decoded size; its figures
                # are in the file's pixels and the record gives the file's size.
                prediction = Prediction.from_result(
                    results[prompt], photo, image=image_path, model=self.model_id, threshold=self.threshold[prompt],
                    mm_per_px=self.mm_per_px, qa_rules=self.qa_rules, prompt_config=self.prompt_config,
                ).save(self.out, names[prompt], overlay=self.overlays)
            else:
                photo = photo or _photo_or_none(image_path)
                prediction = _remeasure(self.out, saved[prompt], self.mm_per_px, self.qa_rules, self.prompt_config,
                                        photo)
            outcomes.append((prediction.without_arrays(coco=self.coco), prompt in results))
        return outcomes


#: The settings of the run that made an output folder's masks (written before the first mask).
RUN_FILE = "run.json"
# Settings a rerun must share to reuse the saved masks (scale and QA rules are measured again).
_RUN_KEYS = ("model", "weights", "runtime", "threshold", "class_thresholds", "tta", "tile", "prompts")


def run_settings(predictor: Predictor, model_id: str, prompts: Sequence[str]) -> dict:
    """What made the masks of a run: model (its name and the hash of its weight files, so a model
    retrained into the same folder is a new model), runtime, threshold (and calibrated per-class
    ones), test-time flips, tile setting (each record says the tiles its photo took), prompts."""
    return {
        "model": model_id, "weights": weights_digest(getattr(predictor, "weights_files", ())),
        "runtime": getattr(predictor, "name", type(predictor).__name__),
        "threshold": float(getattr(predictor, "threshold", 0.5)),
        "class_thresholds": dict(getattr(predictor, "thresholds", {}) or {}), "tta": getattr(predictor, "views", "none"),
        "tile": getattr(predictor, "tile", "off"), "prompts": list(prompts),
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
    try:
        previous, changed = read_run_file(out), []
    except ConfigError:
        if not overwrite:
            raise
        previous, changed = None, [f"{RUN_FILE} unreadable"]
    if isinstance(previous, dict) and any((out / "records").glob("*.json")):  # no masks yet: nothing to protect
        # A key a run.json does not have yet was its default then (class_thresholds: none; no tiles;
        # weights: not recorded, so they cannot be shown to be the same).
        defaults = {"class_thresholds": {}, "tile": "off"}
        changed = [f"{key} {previous.get(key, defaults.get(key))!r} -> {settings[key]!r}" for key in _RUN_KEYS
                   if previous.get(key, defaults.get(key)) != settings[key]]
    if changed and not overwrite:
        raise ConfigError(f"{path}: this folder holds masks made with other settings ({'; '.join(changed)}); "
                          "pass --overwrite to predict them again, or choose another --out")
    atomic_write_json(path, settings, indent=2)
    return bool(changed)


def read_run_file(out: str | os.PathLike) -> dict | None:
    """The :data:`RUN_FILE` of an output folder, or None when there is none.

    Raises:
        ConfigError: If it is not a run file (never guessed at: the masks beside it could be any
            model's); ``--overwrite`` predicts every image again.
    """
    path = Path(out) / RUN_FILE
    if not path.is_file():
        return None
    try:
        settings = read_json(path)
        if not isinstance(settings, dict):
            raise DataError(f"{path}: expected a JSON object, got {type(settings).__name__}")
    except DataError as exc:
        raise ConfigError(f"{path}: not a run file of drywallqa predict ({str(exc).split(': ', 1)[-1]}); "
                          "pass --overwrite to predict every image again, or choose another --out") from exc
    return settings


def _skip_reason(exc: DataError) -> str:
    if isinstance(exc, ImageSizeError):
        return "image too large" if exc.too_large else "image too small"
    if isinstance(exc, HeifSupportMissing):
        return "HEIC/HEIF needs drywallqa[heic]"
    return "unreadable image"


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


def _photo_or_none(image_path: Path) -> Photo | None:
    """The photo of a resumed pair, for its crack widths; None when it can no longer be read (its
    widths are then the saved mask's, and its record says ``width_source: mask``)."""
    try:
        return read_photo(image_path)
    except DataError:
        return None


def _remeasure(out: Path, record: dict, mm_per_px: float | None, qa_rules: QARules,
               prompt_config: PromptConfig, photo: Photo | None = None) -> Prediction:
    """Figures and verdict of a resumed pair, measured again from its saved mask (and the photo,
    when given and of the mask's size); its record is written again when they changed."""
    saved = Prediction.from_dict(record, out)
    mask = saved.load_mask()
    pixels = photo.pixels if photo is not None and photo.pixels.shape[:2] == mask.shape else None
    prediction = replace(
        Prediction.measure(mask, saved.prompt, image=saved.image, image_size=(saved.image_width, saved.image_height),
                           pixels=pixels, confidence=saved.confidence, orientation=saved.image_orientation,
                           model=saved.model, threshold=saved.threshold, mm_per_px=mm_per_px, tiling=saved.tiling,
                           qa_rules=qa_rules, prompt_config=prompt_config),
        mask_file=f"masks/{saved.name}.png", folder=out,
        overlay_file=saved.overlay_file if (out / str(saved.overlay_file)).is_file() else None)
    if prediction.to_dict() != record:
        atomic_write_json(out / "records" / f"{saved.name}.json", prediction.to_dict(), indent=1)
    return prediction
