"""The predictions of a photo or of a run, the tables written from them, and :func:`predict`.

:class:`Predictions` is a sequence of :class:`~drywallqa.inference.Prediction`, in order: one
photo's (every prompt, and :attr:`~Predictions.verdict`, the photo's) or a run's (every photo's).
It writes what a ``predict`` folder holds besides the masks::

    results.jsonl    one record per mask (:meth:`~Predictions.to_jsonl`), each with its photo's verdict
    results.csv      the same, flattened: figures as columns (:meth:`~Predictions.to_csv`)
    coco.json        COCO instances, one annotation per mask component (:meth:`~Predictions.to_coco`)
    summary.json     photos and masks per verdict (:meth:`~Predictions.summary`)

and reads a run back (:meth:`~Predictions.read`). :func:`predict` is the notebook's one call: a
photo and its prompts in, its :class:`Predictions` out.

Example:
    >>> import drywallqa                                                            # doctest: +SKIP
    >>> predictions = drywallqa.predict("wall.jpg", ["segment crack", "segment taping area"], mm_per_px=0.5)
    >>> predictions.verdict, predictions[0].figure_values["longest_mm"], predictions[0].plot(pil=True)
    >>> predictions.save("out/")            # masks/, overlays/, records/, results.jsonl, .csv, coco.json
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from drywallqa.errors import ConfigError, DataError
from drywallqa.files import Photo, atomic_write_json, atomic_write_text
from drywallqa.inference.prediction import Prediction, json_ready
from drywallqa.paths import output_keys, prompt_slugs
from drywallqa.processing import prompt_threshold
from drywallqa.qa.rules import VERDICTS, QARules, photo_verdict

if TYPE_CHECKING:
    import numpy as np

    from drywallqa.data.prompts import PromptConfig
    from drywallqa.inference.core import Predictor

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
COCO_FILE = "coco.json"
SUMMARY_FILE = "summary.json"
# Leading CSV columns; figure columns follow in the order QAFigures.to_dict() gives them.
CSV_COLUMNS = ("image", "photo_verdict", "prompt", "class", "figure_set", "verdict", "severity", "reasons")
CSV_TRAILING_COLUMNS = ("mask", "overlay", "image_width", "image_height", "image_orientation", "model", "threshold",
                        "mm_per_px")


class Predictions(Sequence[Prediction]):
    """Predictions in order: one photo's (all its prompts) or a run's (every photo's).

    Args:
        predictions: The predictions.
    """

    def __init__(self, predictions: Iterable[Prediction] = ()):
        self._items = list(predictions)
        for item in self._items:
            if not isinstance(item, Prediction):
                raise TypeError(f"Predictions holds Prediction objects, got {type(item).__name__}")

    @classmethod
    def read(cls, path: str | os.PathLike) -> Predictions:
        """A ``predict`` run's predictions, from its folder or its ``results.jsonl`` (masks stay on disk).

        Raises:
            DataError: If the file is missing, or a line is not a JSON prediction record.
        """
        records, folder = read_results(path)
        return cls.from_dicts(records, folder, source=results_file(path))

    @classmethod
    def from_dicts(cls, records: Iterable[dict], folder: str | os.PathLike | None = None, *,
                   source: str | os.PathLike = "records") -> Predictions:
        """Records (:meth:`Prediction.to_dict`) read back; mask paths relative to ``folder``.

        Raises:
            DataError: Naming ``source`` and the record that is not a prediction record.
        """
        predictions = []
        for number, record in enumerate(records, start=1):
            try:
                predictions.append(Prediction.from_dict(record, folder))
            except DataError as exc:
                raise DataError(f"{source}: record {number} is {exc}") from exc
        return cls(predictions)

    # -- sequence ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Prediction]:
        return iter(self._items)

    @overload
    def __getitem__(self, index: int) -> Prediction: ...

    @overload
    def __getitem__(self, index: slice) -> Predictions: ...

    def __getitem__(self, index: int | slice) -> Prediction | Predictions:
        return Predictions(self._items[index]) if isinstance(index, slice) else self._items[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Predictions) and self._items == other._items

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in self.verdict_counts(per_photo=True).items() if n)
        return f"Predictions({len(self)} masks of {len(self.photos())} photo(s); photos: {counts or 'none'})"

    # -- verdicts ---------------------------------------------------------------------------------
    @property
    def verdict(self) -> str:
        """The photo's verdict (:func:`~drywallqa.qa.photo_verdict` of every prediction's): for one
        photo's predictions; a run's give :meth:`photo_verdicts`."""
        return photo_verdict(p.verdict.verdict for p in self)

    def photos(self) -> dict[str, Predictions]:
        """``{image: its predictions}``, photos in the order they first come."""
        by_image: dict[str, list[Prediction]] = {}
        for prediction in self:
            by_image.setdefault(prediction.image, []).append(prediction)
        return {image: Predictions(items) for image, items in by_image.items()}

    def photo_verdicts(self) -> dict[str, str]:
        """``{image: photo verdict}``: each photo's prompts' verdicts combined."""
        return {image: predictions.verdict for image, predictions in self.photos().items()}

    def verdict_counts(self, per_photo: bool = False) -> dict[str, int]:
        """Masks (or, with ``per_photo``, photos) per verdict, every verdict of :data:`~drywallqa.qa.VERDICTS` listed."""
        counts = dict.fromkeys(VERDICTS, 0)
        for verdict in (self.photo_verdicts().values() if per_photo else (p.verdict.verdict for p in self)):
            counts[verdict] = counts.get(verdict, 0) + 1
        return counts

    def with_photo_verdicts(self) -> Predictions:
        """The predictions, each with its photo's verdict (:attr:`Prediction.photo_verdict`)."""
        verdicts = self.photo_verdicts()
        return Predictions(p if p.photo_verdict == verdicts[p.image] else replace(p, photo_verdict=verdicts[p.image])
                           for p in self)

    # -- tables -----------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict]:
        """The records of ``results.jsonl``, each with its photo's verdict."""
        return [p.to_dict() for p in self.with_photo_verdicts()]

    def to_jsonl(self) -> str:
        """``results.jsonl``: one record a line."""
        return "".join(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n" for record in self.to_dicts())

    def to_csv(self) -> str:
        """``results.csv``: fixed leading columns, one column per figure, then paths and settings."""
        records = self.to_dicts()
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

    def to_coco(self, image_root: str | os.PathLike | None = None, *, min_component_area_px: int = 1) -> dict:
        """COCO instances for annotation tools (CVAT, Label Studio): one annotation per mask component.

        Categories are the prompt classes (a prompt of no class becomes a category of its own
        name). Each image carries its ``photo_verdict``, and ``info`` the count of photos per
        verdict (``photo_verdicts``). Each annotation carries ``score`` (the model's confidence
        for the mask) and ``attributes`` (prompt and verdict); see :meth:`Prediction.coco_annotations`.

        Args:
            image_root: Folder ``file_name`` entries are relative to; the photos' common folder by default.
            min_component_area_px: Smaller components are left out.

        Returns:
            The JSON-ready COCO dictionary.
        """
        from drywallqa.data.core import Sample
        from drywallqa.data.formats.coco import samples_to_coco

        photos = self.photos()
        root = Path(image_root) if image_root is not None else common_folder(Path(image) for image in photos)
        samples, extras = [], []
        for image, predictions in photos.items():
            annotations = []
            for prediction in predictions:
                for annotation, extra in prediction.coco_annotations(min_component_area_px):
                    annotations.append(annotation)
                    extras.append(extra)
            first = predictions[0]
            samples.append(Sample(Path(image), first.image_width, first.image_height, "", "", "", tuple(annotations)))
        classes = sorted({a.class_name for s in samples for a in s.annotations} | {p.class_name for p in self if p.class_name})
        coco = samples_to_coco(samples, root, class_names=classes, description="drywallqa predict")
        for annotation, extra in zip(coco["annotations"], extras):
            annotation.update(extra)
        coco["info"]["photo_verdicts"] = self.verdict_counts(per_photo=True)
        for entry, verdict in zip(coco["images"], self.photo_verdicts().values()):
            entry["photo_verdict"] = verdict
        ready: dict = json_ready(coco)
        return ready

    def summary(self) -> dict:
        """Photos and masks per verdict: ``{"photo_verdicts", "images", "records", "verdicts"}``."""
        return {"photo_verdicts": self.verdict_counts(per_photo=True), "images": len(self.photos()),
                "records": len(self), "verdicts": self.verdict_counts()}

    # -- pictures and files -----------------------------------------------------------------------
    def plot(self, *, pil: bool = False) -> Any:
        """Every mask of one photo tinted and outlined on it, each in its figure set's colour.

        Args:
            pil: Return a ``PIL.Image.Image`` instead of an array.

        Raises:
            ValueError: If the predictions are of several photos (plot :meth:`photos` one by one).
        """
        if len(self.photos()) != 1:
            raise ValueError(f"plot draws one photo's predictions, these are of {len(self.photos())}; "
                             "plot each of predictions.photos().values()")
        image = self[0].plot()
        for prediction in self[1:]:
            image = prediction.plot(image=image)
        if pil:
            from PIL import Image

            return Image.fromarray(image)
        return image

    def save(self, folder: str | os.PathLike, *, overlays: bool = True, coco: bool = True) -> Predictions:
        """Write the files of a ``predict`` folder: every mask, overlay and record
        (:meth:`Prediction.save`), then ``results.jsonl``, ``results.csv``, ``coco.json`` and ``summary.json``.

        Args:
            folder: The output folder.
            overlays: Write ``overlays/``.
            coco: Write ``coco.json``.

        Returns:
            The predictions as saved.
        """
        folder = Path(folder)
        keys = output_keys(list(dict.fromkeys(Path(p.image) for p in self)))
        slugs = prompt_slugs(list(dict.fromkeys(p.prompt for p in self)))
        saved = Predictions(p.save(folder, f"{keys[Path(p.image)]}__{slugs[p.prompt]}", overlay=overlays)
                            for p in self).with_photo_verdicts()
        atomic_write_text(folder / RESULTS_JSONL, saved.to_jsonl())
        atomic_write_text(folder / RESULTS_CSV, saved.to_csv())
        if coco:
            atomic_write_json(folder / COCO_FILE, saved.to_coco())
        atomic_write_json(folder / SUMMARY_FILE, saved.summary(), indent=2)
        return saved


def read_results(path: str | os.PathLike) -> tuple[list[dict], Path]:
    """The records of a prediction run, as written (:meth:`Predictions.read` gives them as predictions).

    Args:
        path: A ``predict`` output folder, or its ``results.jsonl``.

    Returns:
        ``(records, folder)``; mask and overlay paths in records are relative to ``folder``.

    Raises:
        DataError: If the file is missing or a line is not a JSON record.
    """
    file = results_file(path)
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


def results_file(path: str | os.PathLike) -> Path:
    """The ``results.jsonl`` of a run: ``path`` itself, or the one in the folder ``path``
    (mask and overlay paths in it are relative to its folder)."""
    path = Path(path)
    return path / RESULTS_JSONL if path.is_dir() else path


def common_folder(images: Iterable[Path]) -> Path:
    """The deepest folder holding every image (COCO ``file_name`` entries are relative to it)."""
    return Path(os.path.commonpath([str(Path(image).parent) for image in images]))


def predict(
    image: str | os.PathLike | np.ndarray,
    prompts: str | Sequence[str],
    predictor: Predictor | None = None,
    *,
    mm_per_px: float | None = None,
    tile: str | int | None = None,
    qa_rules: QARules | None = None,
    prompt_config: PromptConfig | None = None,
    model: str = "default",
) -> Predictions:
    """Segment one photo with one or more prompts and judge each mask: everything a notebook needs in one call.

    Args:
        image: A photo file, read as ``predict`` reads it (turned as a viewer shows it, decoded
            reduced when large), or an RGB ``uint8`` ``(H, W, 3)`` array.
        prompts: One prompt, or several (``["segment crack", "segment taping area"]``).
        predictor: From :func:`~drywallqa.inference.load_predictor`; the shipped model on the
            best runtime here when None (loaded on each call: pass one to judge many photos).
        mm_per_px: Image scale of the photo file: millimetre figures, millimetre rules and the tile scale.
        tile: Tile setting of a batched runtime (``"auto"``, ``"off"`` or a side in pixels); the
            predictor's when None.
        qa_rules: Figure sets and pass/fail rules; the built-in ``qa-rules.yaml`` by default.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default (the predictor
            looks its calibrated per-class thresholds up in it too).
        model: The model name the predictions record.

    Returns:
        One :class:`~drywallqa.inference.Prediction` per prompt, in order, each with the photo's
        verdict; their ``timings`` give the decode, model (the photo's, all prompts) and QA seconds.

    Raises:
        ConfigError: For an empty prompt, a bad scale or tile setting, or a bad array.
        DataError: If the photo cannot be read.
    """
    from drywallqa.files import read_photo
    from drywallqa.inference.core import BatchedPredictor, check_image, check_prompt
    from drywallqa.qa.figures import check_mm_per_px

    prompts = list(dict.fromkeys(check_prompt(p) for p in ([prompts] if isinstance(prompts, str) else prompts)))
    if not prompts:
        raise ConfigError("give at least one prompt, e.g. 'segment crack'")
    check_mm_per_px(mm_per_px)
    qa_rules = (qa_rules or QARules.default()).check_classes(prompt_config)
    if predictor is None:
        from drywallqa.inference.load import load_predictor

        predictor = load_predictor()
    if prompt_config is not None:
        predictor.set_prompt_config(prompt_config)
    started = time.perf_counter()
    photo: Photo | np.ndarray
    if isinstance(image, (str, os.PathLike)):
        photo = read_photo(image)
        name, pixels, scale = str(image), photo.pixels, photo.scale
    else:
        photo = pixels = check_image(image)
        name, scale = "image", 1.0
    decoded = time.perf_counter()
    if isinstance(predictor, BatchedPredictor):  # the tile scale follows the decoded pixels; each tile encoded once
        results = predictor.predict_many([pixels], [list(prompts)],
                                         mm_per_px=mm_per_px * scale if mm_per_px else None, tile=tile)[0]
    else:
        results = predictor.predict_batch([pixels] * len(prompts), prompts)
    predicted = time.perf_counter()
    timings = {"decode_s": decoded - started, "model_s": predicted - decoded}
    predictions = []
    for prompt, result in zip(prompts, results):
        prediction = Prediction.from_result(result, photo, image=name, model=model,
                                            threshold=prompt_threshold(predictor, prompt), mm_per_px=mm_per_px,
                                            qa_rules=qa_rules, prompt_config=prompt_config)
        predictions.append(replace(prediction, timings={**timings, **prediction.timings}))
    return Predictions(predictions).with_photo_verdicts()
