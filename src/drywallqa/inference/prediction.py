"""One prediction: the mask of one photo for one prompt, its QA figures and verdict, and how it is written.

A :class:`Prediction` is built once, from the predictor's
:class:`~drywallqa.inference.SegmentationResult` and the photo (:meth:`Prediction.from_result`;
:meth:`Prediction.measure` from a mask alone) by the QA rules
(:func:`~drywallqa.qa.inspect_mask`), and every output is written from it by its own methods:
the record of ``results.jsonl`` (:meth:`~Prediction.to_dict`, read back by
:meth:`~Prediction.from_dict`), the mask PNG, overlay JPEG and record file of a ``predict`` folder
(:meth:`~Prediction.save`), COCO (:meth:`~Prediction.to_coco`) and the overlay as a picture
(:meth:`~Prediction.plot`). :class:`~drywallqa.inference.Predictions` holds the predictions of a
photo (all its prompts) or of a run, and writes the tables.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from drywallqa.errors import DataError, DrywallQAError
from drywallqa.files import Photo, atomic_write_bytes, atomic_write_json
from drywallqa.inference.render import FIGURE_SET_COLOURS, jpeg_bytes, mask_png_bytes, read_mask_png, render_overlay
from drywallqa.paths import data_file, output_keys, prompt_slugs
from drywallqa.qa.figures import QAFigures
from drywallqa.qa.inspection import MaskInspection, inspect_mask
from drywallqa.qa.rules import VERDICTS, Verdict

if TYPE_CHECKING:
    from drywallqa.data.prompts import PromptConfig
    from drywallqa.inference.core import SegmentationResult
    from drywallqa.qa.rules import QARules

#: JPEG quality of the overlays of a ``predict`` folder.
OVERLAY_QUALITY = 90
# Keys of a record that a Prediction holds in fields of its own; a record's other keys (``truth``) go to ``extra``.
_RECORD_KEYS = frozenset({
    "image", "photo_verdict", "prompt", "class", "figure_set", "figures", "verdict", "reasons", "severity", "checked",
    "width_profile", "mask", "overlay", "image_width", "image_height", "image_orientation", "model", "threshold",
    "mm_per_px", "tiling",
})


@dataclass(frozen=True)
class Prediction:
    """The mask of one photo for one prompt, with its QA figures and verdict.

    Attributes:
        image: The photo: its path as given (``predict`` records it resolved), or its name.
        prompt: The prompt the mask answers.
        class_name: The prompt's class, or None when it names none (verdict ``unchecked``).
        figures: The QA figures, in the photo file's pixels (and millimetres with ``mm_per_px``).
        verdict: Pass, fail, not found or unchecked, with reasons and severity.
        image_width: Width of the photo as a viewer shows it (the file's full size).
        image_height: Its height.
        image_orientation: The EXIF orientation applied to the file's pixels (1 to 8), or None
            when not known (a photo given as an array, results made elsewhere).
        model: Name of the model, as runs record it.
        threshold: Mask probability threshold the mask was cut at (None: not known).
        mm_per_px: Image scale the figures were measured with, or None.
        tiling: The tiles the photo was judged in (:meth:`~drywallqa.inference.TilePlan.to_dict`),
            or None for a predictor without tiles.
        mask_file: Path of the mask PNG, relative to :attr:`folder`, once saved (``masks/<name>.png``).
        overlay_file: Path of the overlay JPEG, relative to :attr:`folder`, or None when none was written.
        photo_verdict: The verdict of the photo (every prompt's combined,
            :func:`~drywallqa.qa.photo_verdict`), set by :class:`~drywallqa.inference.Predictions`.
        extra: Further record entries, kept as read (``truth``: the mask scored against a true one).
        timings: Seconds spent on it per step (``decode_s``, ``model_s``, ``qa_s``), when measured;
            never written.
        mask: ``(h, w)`` bool at the photo's decoded size, when in memory (else read from
            :attr:`mask_file` on use).
        pixels: The photo's RGB ``uint8`` pixels at the mask's size, when in memory.
        folder: The folder :attr:`mask_file` and :attr:`overlay_file` are relative to.
        coco_parts: Its COCO annotations, measured before the mask left memory.
        written_figures: ``(figures, values)`` of a record read back: its figures as written,
            exactly (their ``*_mm`` twins were rounded from unrounded pixel figures).
    """

    image: str
    prompt: str
    class_name: str | None
    figures: QAFigures
    verdict: Verdict
    image_width: int
    image_height: int
    image_orientation: int | None = None
    model: str = "default"
    threshold: float | None = 0.5
    mm_per_px: float | None = None
    tiling: dict | None = None
    mask_file: str | None = None
    overlay_file: str | None = None
    photo_verdict: str | None = None
    extra: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    folder: Path | None = field(default=None, repr=False, compare=False)
    coco_parts: list | None = field(default=None, repr=False, compare=False)
    written_figures: tuple[QAFigures, dict] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not isinstance(self.prompt, str):
            raise ValueError(f"image and prompt must be text, got {self.image!r} and {self.prompt!r}")
        if not isinstance(self.figures, QAFigures) or not isinstance(self.verdict, Verdict):
            raise ValueError("figures must be QAFigures and verdict a Verdict (see drywallqa.qa.inspect_mask)")
        for name in ("image_width", "image_height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.photo_verdict is not None and self.photo_verdict not in VERDICTS:
            raise ValueError(f"photo_verdict must be one of {', '.join(VERDICTS)}, got {self.photo_verdict!r}")
        if self.mask is not None and (self.mask.ndim != 2 or self.mask.dtype != bool):
            raise ValueError(f"mask must be (H, W) bool, got {self.mask.shape} {self.mask.dtype}")
        if self.pixels is not None and self.mask is not None and self.pixels.shape[:2] != self.mask.shape:
            raise ValueError(f"pixels {self.pixels.shape[:2]} and mask {self.mask.shape} sizes differ")
        clashing = sorted(_RECORD_KEYS & set(self.extra))
        if clashing:
            raise ValueError(f"extra must not hold the record's own keys: {', '.join(clashing)}")

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def measure(
        cls, mask: np.ndarray, prompt: str, *, image: str | os.PathLike, image_size: tuple[int, int] | None = None,
        pixels: np.ndarray | None = None, confidence: float | None = None, orientation: int | None = None,
        model: str = "default", threshold: float | None = 0.5, mm_per_px: float | None = None,
        tiling: dict | None = None, qa_rules: QARules | None = None, prompt_config: PromptConfig | None = None,
    ) -> Prediction:
        """Measure a mask's QA figures for its prompt's class and judge them.

        Args:
            mask: ``(h, w)`` bool at the photo's decoded size.
            prompt: The prompt the mask answers.
            image: The photo's path or name.
            image_size: ``(width, height)`` of the photo file as shown; the mask's size when None.
                Figures are in these pixels (a mask of a photo decoded reduced is scaled up).
            pixels: The photo, RGB ``uint8`` at the mask's size: crack widths (and taping figures)
                are then measured on it (see :func:`~drywallqa.qa.figures.measure_mask`).
            confidence: The model's confidence for the mask.
            orientation: The EXIF orientation applied to the photo, or None.
            model: Model name to record.
            threshold: Mask threshold to record.
            mm_per_px: Image scale of the photo file; adds millimetre figures and rules.
            tiling: The tiles the photo was judged in.
            qa_rules: Figure sets and rules; the built-in ``qa-rules.yaml`` by default.
            prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        """
        started = time.perf_counter()
        width, height = image_size or (mask.shape[1], mask.shape[0])
        inspection = inspect_mask(mask, prompt, image=pixels, confidence=confidence, mm_per_px=mm_per_px,
                                  qa_rules=qa_rules, prompt_config=prompt_config, scale=width / mask.shape[1])
        return cls(str(image), inspection.prompt, inspection.class_name, inspection.figures, inspection.verdict,
                   int(width), int(height), orientation, model, threshold, mm_per_px, tiling, mask=mask, pixels=pixels,
                   timings={"qa_s": time.perf_counter() - started})

    @classmethod
    def from_result(
        cls, result: SegmentationResult, photo: Photo | np.ndarray, *, image: str | os.PathLike = "image",
        model: str = "default", threshold: float | None = None, mm_per_px: float | None = None,
        qa_rules: QARules | None = None, prompt_config: PromptConfig | None = None,
    ) -> Prediction:
        """The prediction of a predictor's result for a photo: its mask measured and judged.

        Args:
            result: What the predictor returned for the photo and one prompt.
            photo: The photo it was predicted on, as :func:`~drywallqa.files.read_photo` gives it
                (figures in the file's pixels, orientation recorded), or its RGB ``uint8`` array.
            image: The photo's path or name.
            model: Model name to record.
            threshold: Mask threshold to record; the result's when None.
            mm_per_px: Image scale of the photo file, for millimetre figures and rules.
            qa_rules: Figure sets and rules; the built-in ``qa-rules.yaml`` by default.
            prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.
        """
        if isinstance(photo, Photo):
            pixels, size, orientation = photo.pixels, (photo.width, photo.height), photo.orientation
        else:
            pixels, orientation = np.asarray(photo), None
            size = (pixels.shape[1], pixels.shape[0])
        return cls.measure(result.mask, result.prompt, image=image, image_size=size, pixels=pixels,
                           confidence=result.confidence, orientation=orientation, model=model,
                           threshold=result.threshold if threshold is None else threshold, mm_per_px=mm_per_px,
                           tiling=result.extra.get("tiling"), qa_rules=qa_rules, prompt_config=prompt_config)

    @classmethod
    def from_dict(cls, record: dict, folder: str | os.PathLike | None = None) -> Prediction:
        """A record of ``results.jsonl`` (or ``records/<name>.json``) read back; :meth:`to_dict` gives it again.

        Args:
            record: The record.
            folder: The folder its ``mask`` and ``overlay`` paths are relative to (a ``predict`` folder).

        Raises:
            DataError: If it is not a prediction record, saying what is wrong.
        """
        try:
            values = record["figures"]
            if not isinstance(values, dict):
                raise TypeError(f"figures is {type(values).__name__}, not an object")
            figures = QAFigures(
                record.get("figure_set") or "area", float(values.get("area_percent") or 0.0),
                int(values.get("area_px") or 0), int(values.get("components") or 0), values.get("confidence"),
                length_px=values.get("length_px"), longest_px=values.get("longest_px"),
                width_max_px=values.get("width_max_px"), width_mean_px=values.get("width_mean_px"),
                mask_width_max_px=values.get("mask_width_max_px"), mask_width_mean_px=values.get("mask_width_mean_px"),
                width_source=values.get("width_source"), mm_per_px=record.get("mm_per_px"),
                width_profile=record.get("width_profile"))
            verdict = Verdict(record["verdict"], tuple(record.get("reasons") or ()), float(record.get("severity") or 0.0),
                              tuple(record.get("checked") or ()))
            return cls(
                record["image"], record["prompt"], record.get("class"), figures, verdict, record["image_width"],
                record["image_height"], record.get("image_orientation"), record.get("model", "default"),
                record.get("threshold"), record.get("mm_per_px"), record.get("tiling"), record.get("mask"),
                record.get("overlay"), record.get("photo_verdict"),
                extra={key: value for key, value in record.items() if key not in _RECORD_KEYS},
                folder=Path(folder) if folder is not None else None, written_figures=(figures, dict(values)))
        except (KeyError, TypeError, ValueError, DrywallQAError) as exc:
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)  # KeyError's text is the key, quoted
            raise DataError(f"not a prediction record ({detail})") from exc

    # -- what it says -----------------------------------------------------------------------------
    @property
    def confidence(self) -> float | None:
        """The model's own estimate of the mask's IoU, in ``[0, 1]``, or None."""
        return self.figures.confidence

    @property
    def inspection(self) -> MaskInspection:
        """Its prompt, class, figures and verdict (what ``watch`` and the HTTP API report per mask)."""
        return MaskInspection(self.prompt, self.class_name, self.figures, self.verdict)

    @property
    def figure_values(self) -> dict[str, Any]:
        """The figures as records give them (flat, ``*_mm`` twins with a scale); a record read back's exactly as written."""
        if self.written_figures is not None and self.written_figures[0] is self.figures:
            return dict(self.written_figures[1])
        return self.figures.to_dict()

    @property
    def category(self) -> str:
        """Its COCO category and review label: the prompt class, or the prompt's words joined by ``_``."""
        return self.class_name or re.sub(r"[^a-z0-9]+", "_", self.prompt.lower()).strip("_")

    @property
    def name(self) -> str:
        """The name part of its output files, ``<photo>__<prompt>`` (its mask file's, once saved)."""
        if self.mask_file:
            return Path(self.mask_file).stem
        image = Path(self.image)
        return f"{output_keys([image])[image]}__{prompt_slugs([self.prompt])[self.prompt]}"

    def load_mask(self) -> np.ndarray:
        """The mask: in memory, or read from :attr:`mask_file` in :attr:`folder`.

        Raises:
            DataError: If the mask is neither in memory nor saved, or its file cannot be read.
        """
        if self.mask is not None:
            return self.mask
        if self.mask_file is None or self.folder is None:
            raise DataError(f"the mask of {self.image} for {self.prompt!r} is neither in memory nor in a folder")
        return read_mask_png(data_file(self.mask_file, self.folder))  # a record names files in its folder only

    def to_dict(self, *, photo_verdict: bool = True) -> dict:
        """The JSON-ready record, as ``results.jsonl`` holds it.

        Args:
            photo_verdict: Include ``photo_verdict`` (when known); the record files of a
                ``predict`` folder, written before the photo's other prompts are judged, have none.
        """
        inspection = self.inspection.to_dict()
        inspection["figures"] = self.figure_values
        return json_ready({
            "image": self.image, **({"photo_verdict": self.photo_verdict} if photo_verdict and self.photo_verdict else {}),
            **inspection, "mask": self.mask_file, "overlay": self.overlay_file,
            "image_width": self.image_width, "image_height": self.image_height,
            "image_orientation": self.image_orientation, "model": self.model, "threshold": self.threshold,
            "mm_per_px": self.mm_per_px, **({"tiling": self.tiling} if self.tiling is not None else {}), **self.extra,
        })

    def to_coco(self, image_root: str | os.PathLike | None = None) -> dict:
        """COCO instances of this mask alone (see :meth:`Predictions.to_coco <drywallqa.inference.Predictions.to_coco>`)."""
        from drywallqa.inference.predictions import Predictions

        return Predictions([self]).to_coco(image_root)

    def coco_annotations(self, min_component_area_px: int = 1) -> list[tuple]:
        """Its COCO annotations: ``(Annotation, extra fields)`` per 8-connected mask component.

        A mask at the file's size gives RLE segmentations; the mask of a photo decoded reduced
        gives polygons scaled to the file's pixels (an RLE would need the full-size mask). Each
        carries ``area``, ``score`` (the confidence) and ``attributes`` (prompt and verdict).
        """
        if self.coco_parts is not None and min_component_area_px == 1:
            return self.coco_parts
        return _mask_annotations(self.load_mask(), self, min_component_area_px)

    # -- pictures and files -----------------------------------------------------------------------
    def plot(self, *, pil: bool = False, image: np.ndarray | None = None):
        """The mask tinted and outlined on the photo in its figure set's colour: the overlay ``predict`` writes.

        Args:
            pil: Return a ``PIL.Image.Image`` instead of an array.
            image: RGB ``uint8`` at the mask's size to draw on; the photo it was predicted on by
                default (read again from :attr:`image` when not in memory).

        Returns:
            RGB ``uint8`` ``(h, w, 3)`` at the mask's size, or the same as a PIL image.
        """
        if image is None:
            image = self.pixels
        if image is None:
            from drywallqa.files import read_photo

            image = read_photo(self.image).pixels
        overlay = render_overlay(image, self.load_mask(), FIGURE_SET_COLOURS[self.figures.figure_set])
        if pil:
            from PIL import Image

            return Image.fromarray(overlay)
        return overlay

    def save(self, folder: str | os.PathLike, name: str | None = None, *, overlay: bool = True) -> Prediction:
        """Write its mask PNG, overlay JPEG (when ``overlay``) and record as ``predict`` lays them out,
        the record last (so a record on disk means its files are complete).

        ``masks/<name>.png`` (0/255, at the photo's decoded size), ``overlays/<name>.jpg`` and
        ``records/<name>.json``, each atomically.

        Args:
            folder: The output folder.
            name: The name part of the files; :attr:`name` by default.
            overlay: Write the overlay.

        Returns:
            The prediction as saved: its ``mask_file``, ``overlay_file`` and ``folder`` set.
        """
        folder, name = Path(folder), name or self.name
        mask, mask_file, overlay_file = self.load_mask(), f"masks/{name}.png", f"overlays/{name}.jpg"
        saved = replace(self, mask_file=mask_file, overlay_file=overlay_file if overlay else None, folder=folder, mask=mask)
        atomic_write_bytes(folder / mask_file, mask_png_bytes(mask))
        if overlay:
            atomic_write_bytes(folder / overlay_file, jpeg_bytes(saved.plot(), quality=OVERLAY_QUALITY))
        atomic_write_json(folder / "records" / f"{name}.json", saved.to_dict(photo_verdict=False), indent=1)
        return saved

    def without_arrays(self, *, coco: bool = True) -> Prediction:
        """It without its mask and photo in memory (a run keeps thousands of predictions), its COCO
        annotations measured first when ``coco``; the mask is read from its file again when needed."""
        return replace(self, mask=None, pixels=None, coco_parts=self.coco_annotations() if coco else None)

    def __repr__(self) -> str:
        confidence = "" if self.confidence is None else f", confidence={self.confidence:.3f}"
        return (f"Prediction({Path(self.image).name!r}, {self.prompt!r}, class={self.class_name!r}, "
                f"{self.verdict.verdict}, area={self.figures.area_percent:.2f}%, components={self.figures.components}"
                f"{confidence})")


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


def _mask_annotations(mask: np.ndarray, prediction: Prediction, min_component_area_px: int = 1) -> list[tuple]:
    """:meth:`Prediction.coco_annotations` of ``mask``, the prediction's."""
    import cv2
    from scipy.ndimage import find_objects

    from drywallqa.data.core import Annotation
    from drywallqa.data.masks import component_rle

    category = prediction.category
    sx, sy = prediction.image_width / mask.shape[1], prediction.image_height / mask.shape[0]
    x0, y0, w0, h0 = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if not (w0 and h0):
        return []
    score = prediction.figure_values.get("confidence")  # as the record gives it
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
            "area": round(float(areas[k]) * sx * sy), "score": score,
            "attributes": {"prompt": prediction.prompt, "verdict": prediction.verdict.verdict},
        }))
    return found
