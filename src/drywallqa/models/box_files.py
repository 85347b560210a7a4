"""Box sources that list boxes per image file: a detector's COCO or YOLO output, or a dataset's annotations.

File sources know images by name, but a model only sees pixels: each listed image is read once
and reduced to a 16x16 colour thumbnail (its *fingerprint*), and an input image gets the boxes
of the listed image with the nearest fingerprint, if it is near enough. This matches an image
after any resize, stretch or JPEG re-decode, without the predictor passing file names.

The files are read with the dataset readers of :mod:`drywallqa.data.formats` (COCO annotation
files and their categories, YOLO ``data.yaml`` names), so a category means the same class here
as in training.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DataError
from drywallqa.models.box_sources import BoxSource, ImageBoxes

#: Side of the thumbnail that identifies an image (16x16x3 = 768 numbers).
FINGERPRINT_SIDE = 16
#: Largest mean absolute thumbnail difference (in [0, 1] intensity) still counted as the same image.
FINGERPRINT_TOLERANCE = 0.03


def image_fingerprint(image: np.ndarray) -> np.ndarray:
    """16x16 area-averaged RGB thumbnail of a ``uint8`` ``(H, W, 3)`` image, as 768 floats in ``[0, 1]`` (CHW order)."""
    import cv2

    thumbnail = cv2.resize(image, (FINGERPRINT_SIDE, FINGERPRINT_SIDE), interpolation=cv2.INTER_AREA)
    return (thumbnail.astype(np.float32) / 255.0).transpose(2, 0, 1).reshape(-1)


def tensor_fingerprints(images: Tensor) -> np.ndarray:
    """:func:`image_fingerprint` of float ``(B, 3, H, W)`` images in ``[0, 1]``: ``(B, 768)``."""
    pooled = F.adaptive_avg_pool2d(images.detach().float(), FINGERPRINT_SIDE)
    return pooled.flatten(1).cpu().numpy()


class IndexedBoxes(BoxSource):
    """Boxes listed per image file, found for an input image by its fingerprint.

    Args:
        spec: For reports.
        entries: ``(image_path, {class: ImageBoxes})`` per listed image.
        score_threshold: See :class:`BoxSource`.
        max_boxes: See :class:`BoxSource`.
        uses_ground_truth: The boxes are annotations.
    """

    def __init__(
        self,
        spec: str,
        entries: list[tuple[Path, dict[str, ImageBoxes]]],
        score_threshold: float = 0.3,
        max_boxes: int = 8,
        uses_ground_truth: bool = False,
    ):
        super().__init__(spec, score_threshold, max_boxes)
        self.uses_ground_truth = uses_ground_truth
        self.entries = entries
        self._fingerprints: np.ndarray | None = None
        self.unmatched = 0

    def _index(self) -> np.ndarray:
        # Images are read on first use only, so building the model for export or a listing stays cheap.
        if self._fingerprints is None:
            from drywallqa.files import read_image

            if not self.entries:
                raise DataError(f"box source {self.spec}: lists no images")
            self._fingerprints = np.stack([image_fingerprint(read_image(path)) for path, _ in self.entries])
        return self._fingerprints

    def image_boxes(self, images: Tensor, classes: list[str | None]) -> list[ImageBoxes]:
        index = self._index()
        out: list[ImageBoxes] = []
        unmatched = 0
        for fingerprint, class_name in zip(tensor_fingerprints(images), classes, strict=True):
            distances = np.abs(index - fingerprint).mean(axis=1)
            nearest = int(distances.argmin())
            if distances[nearest] > FINGERPRINT_TOLERANCE:
                unmatched += 1
                out.append(ImageBoxes.empty())
                continue
            out.append(
                self.entries[nearest][1].get(class_name, ImageBoxes.empty()) if class_name else ImageBoxes.empty()
            )
        if unmatched:
            self.unmatched += unmatched
            warnings.warn(
                f"box source {self.spec}: {unmatched} image(s) match no listed image (nearest thumbnail differs by "
                f"more than {FINGERPRINT_TOLERANCE}); they get no boxes, so an empty mask",
                stacklevel=2,
            )
        return out


def coco_results_boxes(
    results_path: str, annotations_path: str, prompt_config: PromptConfig, score_threshold: float, max_boxes: int
) -> IndexedBoxes:
    """Boxes from a COCO results file (a list of ``image_id``, ``category_id``, ``bbox``, ``score``).

    Args:
        results_path: The detector's results json.
        annotations_path: The COCO annotation file the results refer to: image ids, file names
            (relative to its folder), sizes and categories (resolved to classes as the dataset
            reader does).
    """
    from drywallqa.data.formats.coco import category_classes, read_coco_file
    from drywallqa.errors import IssueLog
    from drywallqa.files import read_json

    results = read_json(results_path)
    if isinstance(results, dict) and "annotations" in results:
        results = results["annotations"]  # a full COCO file of predictions
    if not isinstance(results, list):
        raise DataError(f"{results_path}: expected a COCO results list of {{image_id, category_id, bbox, score}}")
    coco = read_coco_file(annotations_path)
    folder = Path(annotations_path).parent
    _categories, classes = category_classes(coco, Path(annotations_path), prompt_config, IssueLog(quiet=True))
    images = {str(im.get("id")): im for im in coco["images"] if isinstance(im, dict)}
    per_image: dict[str, dict[str, list[tuple[list[float], float]]]] = {}
    for number, result in enumerate(results):
        try:
            image_id = str(result["image_id"])
            image = images[image_id]
            x, y, w, h = (float(v) for v in result["bbox"])
            class_name = classes[str(result["category_id"])]
            width, height = float(image["width"]), float(image["height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{results_path}: result #{number} is not a valid COCO result for {annotations_path} ({exc!r})"
            ) from exc
        box = [x / width, y / height, (x + w) / width, (y + h) / height]
        per_image.setdefault(image_id, {}).setdefault(class_name, []).append((box, float(result.get("score", 1.0))))
    entries = [
        (folder / image["file_name"], _image_boxes(per_image.get(image_id, {})))
        for image_id, image in images.items()
    ]
    return IndexedBoxes(f"coco:{results_path}", entries, score_threshold, max_boxes)


def yolo_boxes(
    labels_dir: str,
    images_dir: str | None,
    class_names: tuple[str, ...],
    prompt_config: PromptConfig,
    score_threshold: float,
    max_boxes: int,
) -> IndexedBoxes:
    """Boxes from YOLO txt files (``cls cx cy w h [score]``, normalised), one per image stem.

    A detector's label lines carry a score after the box, which dataset label files do not, so
    the lines are read here; the class names come from ``data.yaml`` through the dataset reader.

    Args:
        labels_dir: Folder of ``<image stem>.txt``.
        images_dir: Folder of the images (default: ``labels_dir/../images``).
        class_names: Names by class id (default: ``names`` from a ``data.yaml`` in or above
            ``labels_dir``'s parent).
    """
    from drywallqa.files import list_images

    labels = Path(labels_dir)
    images_folder = Path(images_dir) if images_dir else labels.parent / "images"
    if not labels.is_dir():
        raise DataError(f"{labels}: YOLO labels folder not found")
    if not images_folder.is_dir():
        raise DataError(f"{images_folder}: images folder of the YOLO labels not found; pass box_images=DIR")
    names = dict(enumerate(class_names)) if class_names else _yolo_names(labels)
    entries = []
    for image_path in list_images(images_folder):
        label_file = labels / f"{image_path.stem}.txt"
        found: dict[str, list[tuple[list[float], float]]] = {}
        lines = label_file.read_text(encoding="utf-8").splitlines() if label_file.is_file() else []
        for line_number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                class_id = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:5])
                score = float(parts[5]) if len(parts) > 5 else 1.0
                class_name = prompt_config.resolve(names[class_id]).name
            except (ValueError, KeyError) as exc:
                raise DataError(
                    f"{label_file}:{line_number}: expected 'class cx cy w h [score]' with a class id in "
                    f"{sorted(names)} ({', '.join(names.values())}); got {line!r}"
                ) from exc
            found.setdefault(class_name, []).append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score))
        entries.append((image_path, _image_boxes(found)))
    return IndexedBoxes(f"yolo:{labels_dir}", entries, score_threshold, max_boxes)


def _yolo_names(labels: Path) -> dict[int, str]:
    """Class names by id from the first ``data.yaml`` in or up to three folders above ``labels``."""
    from drywallqa.data.formats.yolo import YAML_FILES, read_yolo_names

    for folder in (labels, labels.parent, labels.parent.parent, labels.parent.parent.parent):
        for candidate in (folder / name for name in YAML_FILES):
            if candidate.is_file():
                return read_yolo_names(candidate)
    raise ConfigError(f"{labels}: no data.yaml with 'names' found near the YOLO labels; pass box_classes=[name, ...]")


def _image_boxes(found: dict[str, list[tuple[list[float], float]]]) -> dict[str, ImageBoxes]:
    """``{class: [(box, score), ...]}`` as ``{class: ImageBoxes}``."""
    return {
        c: ImageBoxes(np.array([b for b, _ in items]), np.array([s for _, s in items])) for c, items in found.items()
    }


def annotation_boxes(dataset: str, score_threshold: float, max_boxes: int) -> IndexedBoxes:
    """The annotated boxes of a dataset (any format :meth:`AnnotatedDataset.load` reads): ground truth."""
    from drywallqa.data.core import AnnotatedDataset

    loaded = AnnotatedDataset.load(dataset)
    entries = []
    for sample in loaded:
        scale = np.array([sample.width, sample.height, sample.width, sample.height], dtype=np.float32)
        entries.append(
            (
                sample.image_path,
                {c: ImageBoxes(sample.boxes(c) / scale, np.ones(len(sample.boxes(c)))) for c in sample.classes},
            )
        )
    return IndexedBoxes(f"annotations:{dataset}", entries, score_threshold, max_boxes, uses_ground_truth=True)
