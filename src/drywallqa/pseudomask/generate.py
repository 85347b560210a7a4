"""Write pseudo-masks for every box-only annotation of a dataset into a new folder.

Output layout (the input dataset is never modified)::

    OUT/pseudomasks.json                      # manifest: method, its parameters, source dataset
    OUT/<split>/_annotations.coco.json        # every image and annotation; pseudo-masks as RLE
    OUT/<split>/masks/<image stem>.png        # 0/255 union of the image's masks (all classes)

``file_name`` entries in the json point back at the original images (relative paths), so
``AnnotatedDataset.load(OUT)`` loads the images with their new masks. Annotations that already
have a true shape (polygon or RLE) are copied through unchanged; images without box-only
annotations still get their PNG (the union of their true masks).

Resume: each PNG carries its image's per-annotation RLE in a ``drywallqa-pseudomask`` text chunk,
so a PNG on disk is a complete per-image result. A rerun skips images whose PNG exists and
rebuilds the json from the PNGs; a PNG without the chunk (edited by another tool) is read back
as pixels and cut to each box. Every file is written to a temporary name and renamed into place,
so an interrupted run leaves whole files only; temporary files of a killed run are removed by the
next one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from drywallqa.console import progress_bar
from drywallqa.data.core import AnnotatedDataset, Annotation, Sample
from drywallqa.data.formats.coco import ANNOTATION_FILE, PSEUDO_MANIFEST, PSEUDO_TOOL, samples_to_coco, write_coco
from drywallqa.data.masks import mask_to_rle
from drywallqa.errors import ConfigError, DataError
from drywallqa.files import atomic_write, atomic_write_json, read_json
from drywallqa.pseudomask.base import PseudoMaskMethod, box_window, imap_in_workers, predict_annotations
from drywallqa.pseudomask.registry import create_method

MANIFEST_FILE = PSEUDO_MANIFEST  # its "dataset" lets the COCO reader follow the file names back
MASKS_FOLDER = "masks"
PNG_CHUNK = "drywallqa-pseudomask"
RECORD_VERSION = 1
TOOL = PSEUDO_TOOL


@dataclass
class PseudoMaskRun:
    """What :func:`make_pseudo_masks` did.

    Attributes:
        out: The output folder.
        method: Registry name of the method.
        images: Images in the dataset (all written).
        made: Images processed in this run.
        resumed: Images whose PNG from an earlier run was reused.
        recovered: Of those, PNGs without the per-annotation chunk, cut to their boxes instead.
        pseudo_annotations: Box-only annotations that got a pseudo-mask.
        copied_annotations: Annotations with a true shape, copied unchanged.
        seconds: Wall time of the run.
        splits: Images per split.
        annotation_files: The COCO json files written.
        config: The method's parameters.
    """

    out: Path
    method: str
    images: int = 0
    made: int = 0
    resumed: int = 0
    recovered: int = 0
    pseudo_annotations: int = 0
    copied_annotations: int = 0
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)
    annotation_files: list[Path] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Throughput of the images processed in this run."""
        return self.made / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "out": str(self.out), "method": self.method, "images": self.images, "made": self.made,
            "resumed": self.resumed, "recovered": self.recovered, "pseudo_annotations": self.pseudo_annotations,
            "copied_annotations": self.copied_annotations, "seconds": round(self.seconds, 3),
            "splits": dict(self.splits), "annotation_files": [str(p) for p in self.annotation_files],
            "config": self.config,
        }

    def __str__(self) -> str:
        resumed = f", {self.resumed} resumed" + (f" ({self.recovered} from pixels)" if self.recovered else "")
        return (
            f"{self.method} pseudo-masks in {self.out}: {self.images} images {self.splits} ({self.made} made"
            f"{resumed if self.resumed else ''}), {self.pseudo_annotations} pseudo-masked annotations, "
            f"{self.copied_annotations} true masks copied, {self.seconds:.1f} s"
        )

    def __repr__(self) -> str:
        return f"PseudoMaskRun({self})"


def as_dataset(dataset: str | os.PathLike | AnnotatedDataset, **load_options) -> AnnotatedDataset:
    """An :class:`AnnotatedDataset` as is, or loaded from a path (format detected)."""
    if isinstance(dataset, AnnotatedDataset):
        return dataset
    return AnnotatedDataset.load(dataset, **load_options)


def mask_path(out: Path, sample: Sample) -> Path:
    """Where the PNG of ``sample`` goes: ``OUT/<split>/masks/<image stem>.png``."""
    return out / sample.split / MASKS_FOLDER / f"{sample.image_path.stem}.png" if sample.split else (
        out / MASKS_FOLDER / f"{sample.image_path.stem}.png"
    )


def make_pseudo_masks(
    dataset: str | os.PathLike | AnnotatedDataset,
    method: str | PseudoMaskMethod = "ridge",
    out: str | os.PathLike = "pseudomasks",
    *,
    workers: int = 2,
    weights: str | None = None,
    device: str | None = None,
    resume: bool = True,
    progress: bool = True,
    splits: str | Iterable[str] | None = None,
    method_options: dict | None = None,
) -> PseudoMaskRun:
    """Make a pseudo-mask for every box-only annotation and write the dataset to ``out``.

    Args:
        dataset: Dataset folder / annotation file (any format :meth:`AnnotatedDataset.load`
            reads) or a loaded dataset.
        method: Registry name (``box``, ``grabcut``, ``ridge``, ``sam``, ``model``) or a method.
        out: New output folder (see the module docstring for the layout). It may not be the
            dataset's own folder or lie inside it.
        workers: Worker processes for CPU methods (images are processed in chunks). Methods that
            run a network (``sam``, ``model``) run in this process on ``device``.
        weights: Checkpoint for ``sam`` (hub id or folder) and ``model`` (folder).
        device: Torch device for ``sam`` and ``model``.
        resume: Reuse the PNGs of an earlier, interrupted run with the same method and parameters.
            With False every image is redone and existing files are replaced.
        progress: Show a tqdm progress bar on stderr.
        splits: Only these splits (default: all).
        method_options: Method parameters, e.g. ``{"iterations": 3}`` for grabcut.

    Returns:
        A :class:`PseudoMaskRun` summary.

    Raises:
        ConfigError: Unknown method or options; ``out`` inside the dataset; ``out`` holds masks
            of another method or parameters while ``resume`` is True.
        DataError: Unreadable images, or two images of a split with the same file stem.

    Example:
        >>> run = make_pseudo_masks("data/drywall-join", "ridge", "data/drywall-join-ridge")  # doctest: +SKIP
        >>> AnnotatedDataset.load(run.out)                                                     # doctest: +SKIP
    """
    start = time.perf_counter()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    data = as_dataset(dataset)
    if splits is not None:
        data = data.split(splits)
    out = Path(out)
    _check_out(out, data)
    instance = create_method(method, weights=weights, device=device, **(method_options or {}))
    name = instance.name
    config = _jsonable(instance.config())
    _check_manifest(out, name, config, data, resume)
    atomic_write_json(out / MANIFEST_FILE, {
        "tool": TOOL, "method": name, "config": config, "dataset": str(data.root.resolve() if data.root else data.name), "complete": False,
    }, indent=1)

    samples = list(data.samples)
    paths = [mask_path(out, s) for s in samples]
    _check_unique(paths, samples)
    for folder in sorted({p.parent for p in paths}):
        _remove_stale_temp_files(folder)

    records: dict[int, dict[int, dict]] = {}
    run = PseudoMaskRun(out=out, method=name, images=len(samples), config=config)
    todo: list[int] = []
    for i, (sample, path) in enumerate(zip(samples, paths)):
        resumed = _read_record(path, sample, name) if resume and path.is_file() else None
        if resumed is None:
            todo.append(i)
            continue
        records[i], from_pixels = resumed
        run.resumed += 1
        run.recovered += int(from_pixels)

    bar = progress_bar(len(samples), f"masks ({name})", enabled=progress, initial=run.resumed)
    try:
        tasks = [(i, samples[i], paths[i]) for i in todo]
        for i, record in _run_tasks(instance, tasks, workers):
            records[i] = record
            run.made += 1
            bar.update(1)
    finally:
        bar.close()

    for split in dict.fromkeys(s.split for s in samples):
        indices = [i for i, s in enumerate(samples) if s.split == split]
        new_samples = []
        for i in indices:
            sample, record = samples[i], records[i]
            annotations = []
            for k, ann in enumerate(sample.annotations):
                if ann.has_mask:
                    annotations.append(ann)
                    run.copied_annotations += 1
                else:
                    annotations.append(_with_rle(ann, record[k]))
                    run.pseudo_annotations += 1
            new_samples.append(_replace_annotations(sample, annotations))
        folder = out / split if split else out
        coco = samples_to_coco(
            new_samples, folder, class_names=data.class_names,
            description=f"pseudo-masks ({name}) written by {TOOL} from {data.root or data.name}", pseudo_method=name,
        )
        run.annotation_files.append(write_coco(folder / ANNOTATION_FILE, coco))
        run.splits[split or "(none)"] = len(indices)
    run.seconds = time.perf_counter() - start
    atomic_write_json(out / MANIFEST_FILE, {
        "tool": TOOL, "method": name, "config": config, "dataset": str(data.root.resolve() if data.root else data.name), "complete": True,
        "summary": run.to_dict(),
    }, indent=1)
    return run


# -- per-image work ------------------------------------------------------------------------------
_WORKER_METHOD: PseudoMaskMethod | None = None


def _init_worker(method: PseudoMaskMethod) -> None:
    global _WORKER_METHOD
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    _WORKER_METHOD = method


def _work(task: tuple[int, Sample, Path]) -> tuple[int, dict[int, dict]]:
    assert _WORKER_METHOD is not None
    return task[0], process_image(_WORKER_METHOD, task[1], task[2])


def _run_tasks(method: PseudoMaskMethod, tasks: list, workers: int):
    """Yield ``(index, record)`` per task, in a pool or in this process."""
    if not tasks:
        return
    if workers == 1 or method.uses_torch or len(tasks) == 1:
        for index, sample, path in tasks:
            yield index, process_image(method, sample, path)
        return
    yield from imap_in_workers(_work, tasks, workers, _init_worker, (method,), max_chunksize=16)


def process_image(method: PseudoMaskMethod, sample: Sample, path: Path) -> dict[int, dict]:
    """Make the masks of one image's box-only annotations and write its PNG.

    Returns:
        ``{annotation index: compressed RLE}`` for the box-only annotations.
    """
    union = np.zeros((sample.height, sample.width), dtype=bool)
    record: dict[int, dict] = {}
    box_only = [k for k, ann in enumerate(sample.annotations) if not ann.has_mask]
    if box_only:
        image = sample.load_image()
        masks = predict_annotations(method, image, [sample.annotations[k] for k in box_only])
        for k, mask in zip(box_only, masks):
            record[k] = mask_to_rle(mask)
            union |= mask
    for ann in sample.annotations:
        if ann.has_mask:
            union |= ann.to_mask(sample.height, sample.width)
    write_mask_png(path, union, {
        "version": RECORD_VERSION, "method": method.name, "image": sample.image_path.name,
        "annotations": len(sample.annotations), "masks": {str(k): rle["counts"] for k, rle in record.items()},
    })
    return record


def write_mask_png(path: Path, mask: np.ndarray, record: dict | None = None) -> Path:
    """Write a 0/255 PNG of a bool mask atomically, with ``record`` as JSON in a text chunk."""
    info = PngImagePlugin.PngInfo()
    if record is not None:
        info.add_text(PNG_CHUNK, json.dumps(record, separators=(",", ":")), zip=True)
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))


def _read_record(path: Path, sample: Sample, method: str) -> tuple[dict[int, dict], bool] | None:
    """The per-annotation RLE of an existing PNG, or None when it must be redone.

    Returns:
        ``(record, from_pixels)``; ``from_pixels`` is True when the PNG had no record chunk and
        each box-only annotation got the PNG's pixels inside its box.
    """
    try:
        with Image.open(path) as img:
            img.load()
            text = img.info.get(PNG_CHUNK) if hasattr(img, "info") else None
            pixels = np.asarray(img.convert("L")) > 127
    except (OSError, ValueError, SyntaxError):
        return None  # unreadable (e.g. truncated by a crash outside our atomic writes): redo
    if pixels.shape != (sample.height, sample.width):
        return None
    box_only = [k for k, ann in enumerate(sample.annotations) if not ann.has_mask]
    if text:
        try:
            data = json.loads(text)
            if data.get("method") != method or data.get("annotations") != len(sample.annotations):
                return None
            size = [sample.height, sample.width]
            record = {k: {"size": size, "counts": data["masks"][str(k)]} for k in box_only}
            return record, False
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
    record = {}
    for k in box_only:
        ya, yb, xa, xb = box_window(sample.annotations[k].box, sample.height, sample.width)
        inside = np.zeros_like(pixels)
        inside[ya:yb, xa:xb] = pixels[ya:yb, xa:xb]
        record[k] = mask_to_rle(inside)
    return record, True


# -- helpers --------------------------------------------------------------------------------------
def _with_rle(ann: Annotation, rle: dict) -> Annotation:
    # Marked as pseudo: training may learn from it, evaluation never scores against it.
    return dataclasses.replace(ann, polygons=(), rle=rle, is_pseudo=True)


def _replace_annotations(sample: Sample, annotations: list[Annotation]) -> Sample:
    return dataclasses.replace(sample, annotations=tuple(annotations))


def _check_out(out: Path, data: AnnotatedDataset) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose a new output folder")
    if data.root is None:
        return
    root, target = Path(data.root).resolve(), out.resolve()
    if target == root or root in target.parents:
        raise ConfigError(
            f"output folder {out} is inside the dataset {data.root}; the input is never modified, "
            "choose a folder outside it (e.g. a sibling: <dataset>-pseudomasks)"
        )
    sources = {s.image_path.resolve().parent for s in data.samples}
    if target in sources:
        raise ConfigError(f"output folder {out} holds the dataset's images; choose a new folder")


def _check_manifest(out: Path, name: str, config: dict, data: AnnotatedDataset, resume: bool) -> None:
    path = out / MANIFEST_FILE
    if not path.is_file():
        if resume and out.is_dir() and ((out / MASKS_FOLDER).is_dir() or any(out.glob(f"*/{MASKS_FOLDER}"))):
            raise ConfigError(
                f"{out} has mask folders but no {MANIFEST_FILE}, so their method is unknown; pass resume=False "
                "(--no-resume) to replace them, or choose a new output folder"
            )
        return
    try:
        previous = read_json(path)
    except DataError as exc:
        raise ConfigError(f"{exc}; delete it or pass resume=False (--no-resume)") from None
    if not isinstance(previous, dict) or previous.get("tool") != TOOL:
        raise ConfigError(f"{path} was not written by {TOOL}; choose a new output folder")
    if resume and (previous.get("method") != name or previous.get("config") != config):
        raise ConfigError(
            f"{out} holds masks made with method {previous.get('method')!r} and other parameters than this run "
            f"({name!r}); pass resume=False (--no-resume) to replace them, or choose a new output folder"
        )


def _check_unique(paths: list[Path], samples: list[Sample]) -> None:
    seen: dict[Path, Sample] = {}
    for path, sample in zip(paths, samples):
        if path in seen:
            raise DataError(
                f"{sample.image_path} and {seen[path].image_path} would both write {path}; "
                "image file stems must be unique within a split"
            )
        seen[path] = sample


def _remove_stale_temp_files(folder: Path) -> int:
    """Delete temporary files (``.<name>.<random>.tmp.png``) left by a killed run."""
    removed = 0
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp*"):
            if tmp.is_file():
                tmp.unlink()
                removed += 1
    return removed


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


__all__ = ["MANIFEST_FILE", "PseudoMaskRun", "as_dataset", "make_pseudo_masks", "mask_path", "process_image"]

