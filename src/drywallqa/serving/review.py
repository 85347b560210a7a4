"""The review loop: the least certain predictions out to Label Studio and CVAT, corrections back in.

:func:`export_review` ranks the photos of a ``drywallqa predict`` folder by the model's confidence
(each photo scores the lowest predicted IoU of its masks) and writes the least certain ones::

    images/<name>                               copies of the photos to correct
    label-studio/tasks.json                     one task per photo, its masks as brush predictions
    label-studio/label_config.xml               the labelling interface (one brush label per class)
    cvat/annotations/instances_default.json     the same masks as COCO (RLE, iscrowd 1) for CVAT
    review.json                                 the ranking: photo, confidence, prompts

Label Studio brush masks use its own RLE, encoded and decoded with the ``label-studio-converter``
package (``brush.mask2rle`` / ``brush.decode_rle``): nothing here re-implements that format.

The export copies only photos that lie in the folder the run read them from (``photos``, the
current folder by default) or in the run's own folder, and reads masks only from the run's folder
(:mod:`drywallqa.paths`): a record naming ``/etc/passwd`` is skipped with a warning, never copied.

:func:`import_review` reads what the reviewers exported, a Label Studio JSON export (brush,
polygon and rectangle labels) or a CVAT "COCO 1.0" export (its zip, folder or json), and writes a
Roboflow-layout COCO dataset (``<out>/train/_annotations.coco.json`` beside the images) that
:meth:`~drywallqa.data.AnnotatedDataset.load` reads and ``drywallqa train --init-from default
--data <out>`` fine-tunes on. A photo whose reviewer removed every region is kept as a negative
(no annotation): the correction "there is no crack here" is worth learning. A photo one of whose
regions cannot be read is left out whole (and counted), never kept as a photo with fewer regions.
Photos are found by the last part of the name a task or image entry gives, in the photos' folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Annotation, Sample
from drywallqa.data.formats.coco import ANNOTATION_FILE, samples_to_coco, write_coco
from drywallqa.data.groups import source_group
from drywallqa.data.masks import mask_to_box, mask_to_rle
from drywallqa.errors import ConfigError, DataError, DrywallQAError, IssueLog
from drywallqa.files import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    image_size,
    read_json,
    read_photo,
    write_image,
)
from drywallqa.inference import Prediction, Predictions
from drywallqa.inference.predictions import RESULTS_JSONL, results_file
from drywallqa.inference.render import FIGURE_SET_COLOURS
from drywallqa.paths import UnsafePathError, check_data_path, data_file, is_inside, safe_component
from drywallqa.serving.inputs import output_keys

REVIEW_MANIFEST = "review.json"
LABEL_STUDIO_TASKS = "label-studio/tasks.json"
LABEL_STUDIO_CONFIG = "label-studio/label_config.xml"
CVAT_COCO = "cvat/annotations/instances_default.json"
#: Label Studio control and object tag names of the labelling interface.
FROM_NAME, TO_NAME = "label", "image"
#: Default URL prefix of task images: Label Studio's local-files serving, with the review folder
#: as LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def import_brush():
    """Label Studio's brush RLE codec (``label_studio_converter.brush``), or the install command."""
    try:
        from label_studio_converter import brush
    except ImportError as exc:
        raise DrywallQAError('the review loop needs label-studio-converter: pip install "drywallqa[review]"') from exc
    return brush


# -- export ---------------------------------------------------------------------------------------
@dataclass
class ReviewExport:
    """What :func:`export_review` wrote.

    Attributes:
        out: The review folder.
        ranking: One entry per exported photo, least certain first: ``rank``, ``image`` (the
            original), ``name`` (the copy in ``images/``), ``confidence``, ``prompts``.
        photos: Photos in the prediction run.
        files: Paths of the task file, labelling config, CVAT COCO file and manifest.
    """

    out: Path
    ranking: list[dict] = field(default_factory=list)
    photos: int = 0
    files: dict[str, Path] = field(default_factory=dict)

    def __repr__(self) -> str:
        low = f", confidence {self.ranking[0]['confidence']:.3f}-{self.ranking[-1]['confidence']:.3f}" if self.ranking else ""
        return f"ReviewExport({str(self.out)!r}, {len(self.ranking)} of {self.photos} photos{low})"


def rank_by_confidence(predictions: Predictions) -> list[tuple[str, float, Predictions]]:
    """Photos of a prediction run, least certain first.

    Args:
        predictions: A ``drywallqa predict`` run's (:meth:`~drywallqa.inference.Predictions.read`).

    Returns:
        ``(image, score, predictions)`` per photo; the score is the lowest confidence of its masks
        as recorded (a photo is as doubtful as its worst mask). Ties keep the run's order.
    """
    def score(photo: Predictions) -> float:
        values = [p.figure_values.get("confidence") for p in photo]
        return min((float(v) for v in values if v is not None), default=1.0)

    return sorted([(image, score(photo), photo) for image, photo in predictions.photos().items()], key=lambda item: item[1])


def export_review(predictions: str | os.PathLike, out: str | os.PathLike, count: int = 20, *,
                  image_url_prefix: str = LOCAL_FILES_PREFIX, photos: str | os.PathLike | None = None,
                  strict: bool = False, quiet: bool = False) -> ReviewExport:
    """Export the ``count`` least certain photos of a prediction run for correction.

    Args:
        predictions: A ``drywallqa predict`` output folder (or its ``results.jsonl``).
        out: Review folder (created).
        count: Photos to export.
        image_url_prefix: Prepended to ``images/<name>`` in each task's image URL; the default
            suits Label Studio serving the review folder as local files; an ``http://`` prefix
            suits any web server of the folder.
        photos: The folder the run read its photos from: a record's photo must lie in it (or in
            the run's folder), and a relative ``image`` is taken from it. The current folder by
            default.
        strict: Raise at the first record naming a photo or mask outside those folders, instead
            of skipping its photo.
        quiet: No warning line per skipped photo.

    Returns:
        The ranking and the files written.

    Raises:
        DataError: If the run's records or masks cannot be read, no photo lies in the photos'
            folder, or (strict) a record names a file outside it.
        ConfigError: If ``count`` is below 1 or ``out`` is the prediction folder.
    """
    brush = import_brush()
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    run, folder = Predictions.read(predictions), results_file(predictions).parent
    out = Path(out)
    if out.resolve() == folder.resolve():
        raise ConfigError(f"--out {out} is the prediction folder; choose a folder of its own")
    photo_folder = Path(photos) if photos is not None else Path.cwd()
    log = IssueLog(strict=strict, quiet=quiet)
    run = _records_inside(run, folder, photo_folder, log)
    if not run:
        raise DataError(f"{folder}: none of its photos lies in {photo_folder} ({len(log)} skipped); give --photos, "
                        "the folder the photos were predicted from")
    ranked = rank_by_confidence(run)
    chosen = ranked[:count]
    names = output_keys([Path(image) for image, _, _ in chosen])
    export = ReviewExport(out, photos=len(ranked))
    tasks, copied, labels = [], [], {}
    for rank, (image, score, photo) in enumerate(chosen, start=1):
        source = Path(image)
        name = safe_component(names[source] + source.suffix.lower())
        if not source.is_file():
            raise DataError(f"{source}: the photo of {Path(str(photo[0].mask_file)).name} is gone; "
                            "run the review export where the predicted photos are")
        if (photo[0].image_orientation or 1) == 1:
            atomic_write(out / "images" / name, lambda tmp, source=source: shutil.copyfile(source, tmp))
        else:  # the masks are as a viewer shows the photo: so is the copy (pixels turned, no EXIF tag left to turn them)
            write_image(out / "images" / name, read_photo(source, max_side=None, min_side=1).pixels)
        results = []
        for prediction in photo:
            label = prediction.category
            labels[label] = FIGURE_SET_COLOURS[prediction.figures.figure_set]
            mask = prediction.load_mask()
            if mask.any():
                results.append({
                    "id": f"{rank}-{len(results)}", "type": "brushlabels", "from_name": FROM_NAME, "to_name": TO_NAME,
                    "original_width": int(mask.shape[1]), "original_height": int(mask.shape[0]), "image_rotation": 0,
                    "value": {"format": "rle", "rle": brush.mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]},
                })
            copied.append(replace(prediction, image=str(out / "images" / name), mask=mask))
        tasks.append({
            "data": {TO_NAME: f"{image_url_prefix}images/{name}", "drywallqa_image": name, "confidence": round(score, 4)},
            "predictions": [{"model_version": str(photo[0].model), "score": round(score, 4),
                             "result": results}],
        })
        export.ranking.append({"rank": rank, "image": image, "name": name, "confidence": round(score, 4),
                               "prompts": [p.prompt for p in photo]})
    coco = Predictions(copied).to_coco(out / "images")
    for annotation in coco["annotations"]:
        # COCO (and CVAT's importer) read an RLE segmentation as a mask when iscrowd is 1.
        annotation["iscrowd"] = int(isinstance(annotation.get("segmentation"), dict))
    export.files = {
        "tasks": atomic_write_json(out / LABEL_STUDIO_TASKS, tasks),
        "config": atomic_write_text(out / LABEL_STUDIO_CONFIG, label_config(labels)),
        "cvat": atomic_write_json(out / CVAT_COCO, coco),
        "manifest": atomic_write_json(out / REVIEW_MANIFEST, {
            "predictions": str(folder), "count": count, "photos": len(ranked), "ranking": export.ranking,
        }, indent=1),
    }
    return export


def _records_inside(run: Predictions, folder: Path, photos: Path, log: IssueLog) -> Predictions:
    """The predictions whose photo lies in ``photos`` (a relative ``image`` is taken from there) or
    in ``folder`` and whose mask lies in ``folder``, their ``image`` made absolute. A photo with one
    bad record loses them all (one warning)."""
    checked: list[tuple[str, Prediction]] = []
    bad: set[str] = set()
    for number, prediction in enumerate(run, start=1):
        image, field = prediction.image, "image"
        try:
            if "\x00" in image:
                raise UnsafePathError(f"{image!r:.80} is not a file name")
            path = Path(image) if Path(image).is_absolute() else photos / check_data_path(image)
            if not (is_inside(path, photos) or is_inside(path, folder)):
                raise UnsafePathError(f"{image!r:.120} lies outside the photos' folder {photos} and the run's folder; "
                                      "give --photos, the folder the photos were predicted from")
            field = "mask"
            data_file(prediction.mask_file, folder)
        except UnsafePathError as exc:
            reason = "photo outside the run's folders" if field == "image" else "mask outside the run's folder"
            log.skip(folder / RESULTS_JSONL, f"record {number} {field}", reason, str(exc))
            bad.add(image)
            continue
        checked.append((image, replace(prediction, image=str(path))))
    log.report_hidden()
    return Predictions(prediction for image, prediction in checked if image not in bad)


def label_config(labels: dict[str, tuple[int, int, int]]) -> str:
    """Label Studio's labelling interface: the image, brush labels (and polygons) per class.

    Args:
        labels: Label name -> RGB colour.
    """
    from xml.sax.saxutils import quoteattr

    def entries() -> str:
        return "".join(f'\n    <Label value={quoteattr(name)} background="#{r:02x}{g:02x}{b:02x}"/>'
                       for name, (r, g, b) in sorted(labels.items()))

    return (f'<View>\n  <Image name="{TO_NAME}" value="${TO_NAME}" zoom="true"/>\n'
            f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">{entries()}\n  </BrushLabels>\n'
            f'  <PolygonLabels name="polygon" toName="{TO_NAME}">{entries()}\n  </PolygonLabels>\n</View>\n')


# -- import ---------------------------------------------------------------------------------------
@dataclass
class ReviewImport:
    """What :func:`import_review` wrote.

    Attributes:
        out: The dataset folder (``AnnotatedDataset.load(out)`` reads it).
        dataset: The dataset as loaded back.
        kind: ``"label-studio"`` or ``"coco"``.
        not_reviewed: Tasks or images without a submitted annotation, left out.
        issues: Entries skipped (unreadable regions, missing images), with reasons.
    """

    out: Path
    dataset: AnnotatedDataset
    kind: str
    not_reviewed: int = 0
    issues: IssueLog = field(default_factory=lambda: IssueLog(quiet=True))

    def __repr__(self) -> str:
        annotations = sum(len(s.annotations) for s in self.dataset)
        return (f"ReviewImport({str(self.out)!r}, {self.kind}, {len(self.dataset)} photos, {annotations} annotations, "
                f"not reviewed={self.not_reviewed}, skipped={len(self.issues)})")


def import_review(export: str | os.PathLike, out: str | os.PathLike, *, images: str | os.PathLike | None = None,
                  split: str = "train", strict: bool = False, quiet: bool = False) -> ReviewImport:
    """Turn corrected annotations into a COCO dataset the training stage reads.

    Args:
        export: A Label Studio JSON export (``[{"data": ..., "annotations": [...]}, ...]``), or a
            CVAT COCO 1.0 export: its zip, its folder (``annotations/*.json`` + ``images/``) or
            its json.
        out: Dataset folder to write (``<out>/<split>/_annotations.coco.json`` + images).
        images: Folder of the photos (the review folder's ``images/``); needed for Label Studio
            exports and for CVAT exports without images.
        split: Split folder to write.
        strict: Raise at the first bad entry instead of skipping it.
        quiet: No warning line per skipped entry.

    Returns:
        The dataset as loaded back, and the counts.

    Raises:
        DataError: If the export is not one of these formats, no photo was reviewed, or (strict)
            an entry is bad.
        ConfigError: If the photos' folder is needed and not given.
    """
    export = Path(export)
    if not export.exists():
        raise DataError(f"{export}: no such file or folder")
    log = IssueLog(strict=strict, quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="drywallqa-review-") as tmp:
        if export.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(export) as archive:
                    archive.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{export}: not a readable zip ({exc})") from exc
            export_file, bundled = _coco_in_folder(Path(tmp), export)
        elif export.is_dir():
            export_file, bundled = _coco_in_folder(export, export)
        else:
            export_file, bundled = export, None
        data = read_json(export_file)
        image_dir = Path(images) if images else bundled
        if isinstance(data, list):
            kind = "label-studio"
            if image_dir is None:
                raise ConfigError(f"{export}: give --images, the review folder's images/ (a Label Studio export "
                                  "names the photos but does not hold them)")
            samples, not_reviewed = _label_studio_samples(data, export_file, image_dir, log)
        elif isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
            kind = "coco"
            samples, not_reviewed = _coco_samples(data, export_file, image_dir or export_file.parent, log)
        else:
            raise DataError(f"{export_file}: neither a Label Studio JSON export (a list of tasks) nor a COCO file "
                            "(images, annotations, categories)")
        if not samples:
            raise DataError(f"{export}: no reviewed photo in it ({not_reviewed} without a submitted annotation, "
                            f"{len(log)} skipped); submit the corrected tasks before exporting")
        log.report_hidden()
        _write_dataset(samples, Path(out) / split)
    dataset = AnnotatedDataset.load(out, strict=True, quiet=True)
    return ReviewImport(Path(out), dataset, kind, not_reviewed, log)


def _coco_in_folder(folder: Path, export: Path) -> tuple[Path, Path | None]:
    """The annotation json of a CVAT COCO export folder, and its images folder if any."""
    found = sorted(folder.glob("annotations/*.json")) or sorted(folder.glob("*.json"))
    if not found:
        raise DataError(f"{export}: no annotations/*.json in it (expected a CVAT 'COCO 1.0' export)")
    images = folder / "images"
    return found[0], images if images.is_dir() else None


def _find_image(image_dir: Path, name: str) -> Path | None:
    """The photo ``name`` in ``image_dir``, by the last part of the name (``/`` or ``\\``); Label
    Studio prefixes uploaded files with ``<8 hex>-``.

    Raises:
        UnsafePathError: If that last part is no file name (empty, ``..``, NUL, over-long).
    """
    base = re.split(r"[\\/]", name)[-1]
    check_data_path(base)
    for candidate in (base, re.sub(r"^[0-9a-f]{8}-", "", base)):
        if (image_dir / candidate).is_file():
            return image_dir / candidate
    return None


def _label_studio_samples(tasks: list, file: Path, image_dir: Path, log: IssueLog) -> tuple[list[Sample], int]:
    brush = import_brush()
    samples, not_reviewed = [], 0
    for number, task in enumerate(tasks):
        where = f"task {task.get('id', number) if isinstance(task, dict) else number}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            log.skip(file, where, "not a Label Studio task", "expected an object with 'data'")
            continue
        data = task["data"]
        name = str(data.get("drywallqa_image") or str(data.get(TO_NAME, "")).split("?d=")[-1])
        annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            not_reviewed += 1
            continue
        try:
            path = _find_image(image_dir, name)
        except UnsafePathError as exc:
            log.skip(file, f"{where} data.{TO_NAME}", "unsafe file name", str(exc))
            continue
        if path is None:
            log.skip(file, where, "missing image", f"{name!r:.120} is not in {image_dir}")
            continue
        width, height = image_size(path)
        shapes, lost = [], 0
        for result in annotations[-1].get("result") or []:
            region = result.get("id", "?") if isinstance(result, dict) else "?"
            shape = _region(result, width, height, brush, file, f"{where} region {region}", log) \
                if isinstance(result, dict) else log.skip(file, f"{where} region ?", "region is not an object")
            shapes.append(shape)
            lost += shape is None
        if lost:
            # Kept with fewer regions, the photo would teach the lost ones as "nothing here".
            log.skip(file, where, "photo with a skipped region",
                     f"{lost} of its regions could not be used; the photo is left out, not kept without them")
            continue
        samples.append(Sample(path, width, height, "", "", source_group(path.name), tuple(shapes)))
    return samples, not_reviewed


def _region(result: dict, width: int, height: int, brush, file: Path, where: str, log: IssueLog) -> Annotation | None:
    """One Label Studio result (brush, polygon or rectangle) as an :class:`Annotation`."""
    kind = str(result.get("type", "")).lower()
    value = result.get("value") or {}
    labels = value.get(kind) or value.get("labels") or []
    if not labels:
        log.skip(file, where, "region without a label")
        return None
    label = str(labels[0])
    size = (result.get("original_width", width), result.get("original_height", height))
    if size != (width, height):
        log.skip(file, where, "image size mismatch", f"region drawn on {size[0]}x{size[1]}, image is {width}x{height}")
        return None
    if kind == "brushlabels":
        try:
            pixels = brush.decode_rle(value["rle"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            log.skip(file, where, "invalid brush RLE", str(exc) or type(exc).__name__)
            return None
        if pixels.size != width * height * 4:
            log.skip(file, where, "invalid brush RLE", f"{pixels.size} values for a {width}x{height} RGBA image")
            return None
        mask = pixels.reshape(height, width, 4)[:, :, 3] > 127
        box = mask_to_box(mask)
        if box is None:
            log.skip(file, where, "empty brush region")
            return None
        return Annotation(label, tuple(float(v) for v in box), rle=mask_to_rle(mask), category=label)
    if kind == "polygonlabels":
        try:
            points = np.asarray(value.get("points") or [], dtype=np.float64).reshape(-1, 2) * [width / 100, height / 100]
        except (TypeError, ValueError):
            points = np.full((1, 2), np.nan)
        if not np.isfinite(points).all():
            log.skip(file, where, "invalid polygon", "expected [[x, y], ...] in percent of the image")
            return None
        if len(points) < 3:
            log.skip(file, where, "polygon with fewer than 3 points")
            return None
        box = (points[:, 0].min(), points[:, 1].min(), points[:, 0].max() + 1, points[:, 1].max() + 1)
        return Annotation(label, tuple(float(v) for v in box), polygons=(points.astype(np.float32),), category=label)
    if kind == "rectanglelabels":
        numbers = [value.get(k, 0) for k in ("x", "y", "width", "height")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in numbers):
            log.skip(file, where, "invalid box", f"x, y, width, height must be numbers, got {numbers!r:.80}")
            return None
        x, y = numbers[0] * width / 100, numbers[1] * height / 100
        w, h = numbers[2] * width / 100, numbers[3] * height / 100
        if w <= 0 or h <= 0:
            log.skip(file, where, "zero-area box")
            return None
        return Annotation(label, (x, y, x + w, y + h), category=label)
    log.skip(file, where, "unsupported region", f"type {kind or '?'} (expected brush, polygon or rectangle labels)")
    return None


def _coco_samples(data: dict, file: Path, image_dir: Path, log: IssueLog) -> tuple[list[Sample], int]:
    """A CVAT COCO export through the project's COCO reader, its photos looked up in ``image_dir``."""
    from drywallqa.data.formats.coco import load_coco

    with tempfile.TemporaryDirectory(prefix="drywallqa-coco-") as tmp:
        # The reader takes file names relative to the json: stage it beside links to the photos.
        originals: dict[str, Path] = {}
        located = []
        for entry in data["images"]:
            try:
                path = _find_image(image_dir, str(entry.get("file_name", ""))) if isinstance(entry, dict) else None
            except UnsafePathError as exc:
                log.skip(file, f"image id={entry.get('id')!r:.40} file_name", "unsafe file name", str(exc))
                continue
            if path is None:
                log.skip(file, f"image {entry.get('file_name') if isinstance(entry, dict) else entry!r}", "missing image",
                         f"not in {image_dir}")
                continue
            if path.name not in originals:
                os.symlink(path.resolve(), Path(tmp) / path.name)
                originals[path.name] = path
            located.append({**entry, "file_name": path.name})
        staged = atomic_write_json(Path(tmp) / "export.json", {**data, "images": located})
        dataset = load_coco(staged, issues=log)
        samples = [Sample(originals[s.image_path.name], s.width, s.height, "", "", s.group, s.annotations) for s in dataset]
    return samples, 0


def _write_dataset(samples: list[Sample], folder: Path) -> None:
    """Copy the photos into ``folder`` and write their COCO file, the annotation file last."""
    written = []
    for sample in samples:
        target = folder / sample.image_path.name
        if sample.image_path.resolve() != target.resolve():
            atomic_write(target, lambda tmp, source=sample.image_path: shutil.copyfile(source, tmp))
        written.append(Sample(target, sample.width, sample.height, folder.name, folder.parent.name, sample.group,
                              sample.annotations))
    write_coco(folder / ANNOTATION_FILE, samples_to_coco(written, folder, description="drywallqa review import"))
