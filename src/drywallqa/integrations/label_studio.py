"""A Label Studio ML backend: the model's masks as brush predictions, while annotators label.

Label Studio sends a project's labelling config and tasks; :class:`LabelStudioBackend` answers
each task with one prediction: a brush region (Label Studio's RLE, through the review loop's
codec :func:`~drywallqa.serving.review.import_brush`) per brush label that names a prompt class,
with the model's confidence as the region's ``score`` and the lowest one as the prediction's
(a photo is as doubtful as its worst mask, as in ``drywallqa review export``). Each region's
meta text carries the QA verdict of :func:`~drywallqa.qa.inspect_mask`.

Labels map to prompts through :class:`~drywallqa.data.PromptConfig` (``PromptConfig.class_of``):
``Crack`` -> ``segment crack``; ``Drywall-Join``, ``Taping area``, ``tape`` -> ``segment taping
area``. A label that names no class is listed once in the log and skipped.

The class has the methods of label-studio-ml's ``LabelStudioMLBase`` (``setup``, ``predict``,
``fit``) without depending on it: the only release of ``label-studio-ml`` on PyPI (1.0.9) pins
Flask 1.1.2, Werkzeug 2.0.2 and Jinja2 3.0.3 and pulls in a package named ``attr`` that shadows
``attrs``, and its server needs ``rq``/Redis; the ML backend protocol (``/health``, ``/setup``,
``/predict``, ``/webhook``) is served with FastAPI instead, by
:mod:`drywallqa.integrations.label_studio_app`.

``fit`` keeps corrections for training: with a corrections folder, each submitted or updated
annotation (Label Studio's webhook) is stored with its photo as a Label Studio JSON export
(``annotations.json`` + ``images/``) that ``drywallqa review import`` turns into a dataset for
``drywallqa train --init-from default``; without one it only logs. It never trains inside the
backend: training is minutes to hours of a machine's full attention, started by a person.
"""

from __future__ import annotations

import logging
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.files import Photo, atomic_write_json, read_json, write_image
from drywallqa.inference import Predictor
from drywallqa.integrations.task_images import TaskImageError, TaskImageReader
from drywallqa.qa import QARules, inspect_mask
from drywallqa.serving.review import import_brush

logger = logging.getLogger("drywallqa.label_studio")

#: Label Studio webhook events that carry a reviewer's annotation.
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
CORRECTIONS_FILE = "annotations.json"
CORRECTIONS_IMAGES = "images"
_WRITABLE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class BrushTarget:
    """One ``<BrushLabels>`` control of a labelling config, and the prompts of its labels.

    Attributes:
        from_name: The control's ``name``.
        to_name: The ``<Image>`` it draws on.
        data_key: The task data field holding the image URL (``$image`` -> ``image``).
        prompts: Label value -> prompt, for the labels that name a prompt class.
        unknown: Label values that name no prompt class (skipped).
    """

    from_name: str
    to_name: str
    data_key: str
    prompts: dict[str, str]
    unknown: tuple[str, ...] = ()


def brush_targets(label_config: str, prompt_config: PromptConfig | None = None) -> list[BrushTarget]:
    """The brush controls of a Label Studio labelling config, their labels mapped to prompts.

    Args:
        label_config: The project's labelling config (XML).
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.

    Raises:
        ConfigError: If the config is not XML or has no ``<BrushLabels>`` on an ``<Image>``.

    Example:
        >>> xml = '<View><Image name="img" value="$photo"/><BrushLabels name="tag" toName="img">' \\
        ...       '<Label value="Crack"/><Label value="Mould"/></BrushLabels></View>'
        >>> target, = brush_targets(xml)
        >>> target.data_key, target.prompts, target.unknown
        ('photo', {'Crack': 'segment crack'}, ('Mould',))
    """
    prompt_config = prompt_config or PromptConfig.default()
    try:
        root = ET.fromstring(label_config or "")
    except ET.ParseError as exc:
        raise ConfigError(f"the project's labelling config is not XML ({exc})") from exc
    images = {element.get("name"): element for element in root.iter() if element.tag.lower() == "image"}
    targets = []
    for control in root.iter():
        if control.tag.lower() != "brushlabels":
            continue
        for to_name in (control.get("toName") or "").split(","):
            image = images.get(to_name.strip())
            if image is None or not (image.get("value") or "").startswith("$"):
                continue
            prompts, unknown = {}, []
            for label in control.iter():
                value = label.get("value") if label.tag.lower() == "label" else None
                if not value:
                    continue
                found = prompt_config.class_of(value)
                if found is None:
                    unknown.append(value)
                else:
                    prompts[value] = found.prompt
            targets.append(BrushTarget(control.get("name") or "", to_name.strip(), image.get("value")[1:], prompts,
                                       tuple(unknown)))
    if not targets:
        raise ConfigError("the project's labelling config has no <BrushLabels> on an <Image>: the backend answers with "
                          "brush masks (`drywallqa review export` writes a config that has them: label-studio/label_config.xml)")
    return targets


def full_size_mask(mask: np.ndarray, photo: Photo) -> np.ndarray:
    """``mask`` of a photo decoded reduced, at the photo's full size (nearest neighbour)."""
    if mask.shape == (photo.height, photo.width):
        return mask
    import cv2

    return cv2.resize(mask.astype(np.uint8), (photo.width, photo.height), interpolation=cv2.INTER_NEAREST) > 0


class LabelStudioBackend:
    """The model as a Label Studio ML backend (the methods of label-studio-ml's ``LabelStudioMLBase``).

    Args:
        predictor: The model (:func:`~drywallqa.inference.load_predictor`).
        images: Reads the tasks' photos (:class:`~drywallqa.integrations.task_images.TaskImageReader`).
        model_version: What Label Studio shows as the predictions' model version.
        qa_rules: QA rules for the regions' verdicts; the built-in ones by default.
        prompt_config: Prompt classes mapping labels to prompts; the built-in ones by default.
        corrections: Folder where :meth:`fit` keeps submitted annotations; None: only logged.
    """

    def __init__(self, predictor: Predictor, images: TaskImageReader | None = None, *, model_version: str = "drywallqa",
                 qa_rules: QARules | None = None, prompt_config: PromptConfig | None = None,
                 corrections: str | Path | None = None):
        self.predictor = predictor
        self.images = images or TaskImageReader()
        self.model_version = model_version
        self.qa_rules = qa_rules or QARules.default()
        self.prompt_config = prompt_config or PromptConfig.default()
        self.corrections = Path(corrections) if corrections else None
        self.brush = import_brush()
        self._model_lock = threading.Lock()  # one prediction at a time: runtimes are not all thread-safe
        self._corrections_lock = threading.Lock()
        self._reported_labels: set[str] = set()

    # -- setup ------------------------------------------------------------------------------------
    def setup(self, label_config: str) -> str:
        """Check a project's labelling config when Label Studio connects; returns the model version.

        Raises:
            ConfigError: If the config has no brush labels on an image (Label Studio shows the message).
        """
        self.targets(label_config)
        return self.model_version

    def targets(self, label_config: str) -> list[BrushTarget]:
        """:func:`brush_targets` of a config; labels that name no prompt class are logged once."""
        targets = brush_targets(label_config, self.prompt_config)
        for target in targets:
            new = [label for label in target.unknown if label not in self._reported_labels]
            if new:
                self._reported_labels.update(new)
                logger.warning("labels that name no prompt class, skipped: %s (known classes: %s; see --prompts)",
                               ", ".join(map(repr, new)), ", ".join(self.prompt_config.classes))
        return targets

    # -- predict ----------------------------------------------------------------------------------
    def predict(self, tasks: list[dict], label_config: str, **kwargs) -> list[dict | list]:
        """One answer per task, in order (Label Studio pairs them by position).

        Returns:
            Per task, its prediction ``{"result": [regions], "score": s, "model_version": v}``
            (no regions: the model found nothing), or ``[]``, no prediction, when its photo cannot
            or may not be read (one log line names the task and why) or no label of the config
            names a prompt class: Label Studio then stores nothing for it, so an unread photo
            never looks like a photo where nothing was found, and a later request retries it.
        """
        targets = self.targets(label_config)
        return [self.predict_task(task, targets) for task in tasks]

    def predict_task(self, task: dict, targets: list[BrushTarget]) -> dict | list:
        """The prediction of one task: brush regions with their confidence and QA verdict (or
        ``[]``, see :meth:`predict`)."""
        data = task.get("data") if isinstance(task, dict) else None
        task_id = task.get("id", "?") if isinstance(task, dict) else "?"
        results, scores, photos = [], [], {}
        for target in targets:
            if not target.prompts:
                continue
            url = (data or {}).get(target.data_key)
            try:
                photo = photos[url] if url in photos else photos.setdefault(url, self.images.read(url))
            except (TaskImageError, TypeError) as exc:  # TypeError: a URL that is a list or a dict
                logger.warning("task %s: no prediction: %s", task_id, exc)
                return []
            prompts = list(dict.fromkeys(target.prompts.values()))
            with self._model_lock:
                outcomes = dict(zip(prompts, self.predictor.predict_batch([photo.pixels] * len(prompts), prompts)))
            for label, prompt in target.prompts.items():
                outcome = outcomes[prompt]
                scores.append(float(outcome.confidence))
                if outcome.mask.any():
                    results.append(self._region(f"{task_id}-{len(results)}", target, label, outcome, photo))
        if not scores:
            return []
        return {"result": results, "score": round(min(scores), 4), "model_version": self.model_version}

    def _region(self, region_id: str, target: BrushTarget, label: str, outcome, photo: Photo) -> dict:
        inspection = inspect_mask(outcome.mask, outcome.prompt, confidence=outcome.confidence, qa_rules=self.qa_rules,
                                  prompt_config=self.prompt_config, scale=photo.scale)
        verdict = inspection.verdict
        mask = full_size_mask(outcome.mask, photo)
        return {
            "id": region_id, "from_name": target.from_name, "to_name": target.to_name, "type": "brushlabels",
            "original_width": photo.width, "original_height": photo.height, "image_rotation": 0,
            "value": {"format": "rle", "rle": self.brush.mask2rle(mask.astype(np.uint8) * 255), "brushlabels": [label]},
            "score": round(float(outcome.confidence), 4),
            "meta": {"text": [f"QA: {verdict.verdict}" + (f" ({'; '.join(verdict.reasons)})" if verdict.reasons else "")]},
        }

    # -- fit --------------------------------------------------------------------------------------
    def fit(self, event: str, data: dict, **kwargs) -> dict:
        """Keep a reviewer's annotation for training (Label Studio's webhook), or log it.

        Args:
            event: ``ANNOTATION_CREATED``, ``ANNOTATION_UPDATED``, ``ANNOTATION_DELETED`` or
                ``START_TRAINING``.
            data: The webhook's body: ``task``, ``annotation``, ``project``.

        Returns:
            What was done, for the webhook's answer: ``{"stored": N}`` (annotations kept), or
            ``{"logged": event}``.
        """
        task = data.get("task") if isinstance(data.get("task"), dict) else {}
        annotation = data.get("annotation") if isinstance(data.get("annotation"), dict) else {}
        if event == "START_TRAINING":
            data_from = (f"`drywallqa review import {self.corrections / CORRECTIONS_FILE} --images "
                         f"{self.corrections / CORRECTIONS_IMAGES} --out DATA`, then " if self.corrections else "")
            logger.info("training is not run inside the backend: %s`drywallqa train --init-from default --data DATA`",
                        data_from)
            return {"logged": event}
        if self.corrections is None or event not in (*ANNOTATION_EVENTS, "ANNOTATION_DELETED"):
            logger.info("%s for task %s (not kept: start the backend with --corrections DIR to keep corrections for "
                        "drywallqa train)", event, task.get("id", "?"))
            return {"logged": event}
        with self._corrections_lock:
            return {"stored": self._store(event, task, annotation)}

    def _store(self, event: str, task: dict, annotation: dict) -> int:
        """Update ``annotations.json`` (one entry per task, its latest annotation) and the task's photo."""
        file = self.corrections / CORRECTIONS_FILE
        stored = read_json(file) if file.is_file() else []
        if not isinstance(stored, list):
            raise DrywallQAError(f"{file}: not a Label Studio JSON export (a list of tasks); move it away")
        before = len(stored)
        stored = [entry for entry in stored if not isinstance(entry, dict) or entry.get("id") != task.get("id")]
        if event in ANNOTATION_EVENTS and not annotation.get("was_cancelled"):
            data = dict(task.get("data") or {})
            url = data.get("image") or next((v for v in data.values() if isinstance(v, str) and _looks_like_image(v)), None)
            try:
                photo = self.images.read(url, max_side=None)
            except TaskImageError as exc:
                logger.warning("task %s: annotation not kept: %s", task.get("id", "?"), exc)
                return before
            name = _photo_name(task.get("id"), url)
            write_image(self.corrections / CORRECTIONS_IMAGES / name, photo.pixels)
            stored.append({"id": task.get("id"), "data": {**data, "drywallqa_image": name}, "annotations": [annotation]})
        atomic_write_json(file, stored, indent=1)
        logger.info("%s for task %s: %d task(s) in %s", event, task.get("id", "?"), len(stored), file)
        return len(stored)


def _looks_like_image(value: str) -> bool:
    return value.startswith(("/data/", "http://", "https://"))


def _photo_name(task_id: object, url: str) -> str:
    """A file name for a task's photo in the corrections folder: ``task<id>-<name of the URL's file>``."""
    parts = urlsplit(url)
    source = (parse_qs(parts.query).get("d") or [parts.path])[0]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", unquote(source).rsplit("/", 1)[-1]).strip("._")[-120:] or "photo"
    _, dot, suffix = base.rpartition(".")
    if not dot or f".{suffix.lower()}" not in _WRITABLE_SUFFIXES:
        base = f"{base}.png"
    safe_id = re.sub(r"[^0-9A-Za-z]+", "", str(task_id))[:20] or "x"
    return f"task{safe_id}-{base}"
