"""A CVAT auto-annotation function: the model's masks in a CVAT task, one shape per piece.

With ``cvat-sdk`` and ``cvat-cli`` installed (``pip install "drywallqa[cvat]"``), against a
running CVAT::

    cvat-cli --server-host http://cvat.example:8080 --auth USER task auto-annotate TASK_ID \\
        --function-module drywallqa.integrations.cvat --allow-unmatched-labels \\
        [-p model=str:runs/finetune] [-p labels=str:"crack,drywall joint"] [-p threshold=float:0.4]

``cvat-cli`` calls :func:`create` with the ``-p NAME=TYPE:VALUE`` parameters; the module-level
:data:`spec` and :func:`detect` are the same function with its defaults (the model from
``$DRYWALLQA_MODEL``, else the shipped one), for ``cvat_sdk.auto_annotation.annotate_task(client,
task_id, drywallqa.integrations.cvat)``.

- **Labels**: the function declares one ``mask`` label per name of ``labels`` (default: the
  prompt classes' names, ``crack`` and ``taping_area``); each name maps to its prompt through
  :class:`~drywallqa.data.PromptConfig` (``Drywall joint`` -> ``segment taping area``), and a
  name that maps to none is refused at once. CVAT matches labels by name: give the task's own
  label names, and ``--allow-unmatched-labels`` when the task lacks some of them.
- **Shapes**: one mask shape per connected piece of the predicted mask, pieces under the QA
  rules' ``min_component_area_px`` dropped as noise (as the QA figures do); each shape's
  ``score`` is the model's confidence for the mask. With ``--conf-threshold`` a mask below it is
  left out; with ``--conv-mask-to-poly`` (tasks whose labels are polygons) the pieces' outlines
  are returned as polygons.
- **Image**: the frame as CVAT serves it, whose pixels are the task's coordinates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.inference import Predictor
from drywallqa.qa import QARules

try:
    import cvat_sdk.auto_annotation as cvataa
    from cvat_sdk.masks import encode_mask
except ImportError as exc:  # the module is only ever loaded by cvat-cli or with cvat-sdk at hand
    raise ImportError('the CVAT auto-annotation function needs cvat-sdk: pip install "drywallqa[cvat]"') from exc

#: Environment variable naming the model of the module-level function (a ``--model`` value).
MODEL_ENV = "DRYWALLQA_MODEL"


def label_prompts(labels: str | Sequence[str] | None, prompt_config: PromptConfig | None = None) -> dict[str, str]:
    """Label names -> prompts.

    Args:
        labels: Label names, as a list or one comma-separated string; None: every prompt class
            by its name.
        prompt_config: Prompt classes; the built-in ``prompts.yaml`` by default.

    Raises:
        ConfigError: For an empty list or a name that names no prompt class.

    Example:
        >>> label_prompts("Crack, drywall joint")
        {'Crack': 'segment crack', 'drywall joint': 'segment taping area'}
    """
    prompt_config = prompt_config or PromptConfig.default()
    if labels is None:
        return {name: spec.prompt for name, spec in prompt_config.classes.items()}
    names = [name.strip() for name in (labels.split(",") if isinstance(labels, str) else labels)]
    names = [name for name in dict.fromkeys(names) if name]
    if not names:
        raise ConfigError("labels: no label name given (e.g. labels=str:crack,taping_area)")
    prompts = {}
    for name in names:
        found = prompt_config.class_of(name)
        if found is None:
            known = "; ".join(f"{c.name} ({', '.join(c.aliases)})" for c in prompt_config.classes.values())
            raise ConfigError(f"labels: {name!r} names no prompt class; known classes and aliases: {known}")
        prompts[name] = found.prompt
    return prompts


def mask_pieces(mask: np.ndarray, min_area_px: int) -> list[np.ndarray]:
    """The connected pieces (8-connected) of a mask with at least ``min_area_px`` pixels, as full-size masks."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= max(1, min_area_px)]


def piece_polygons(piece: np.ndarray) -> list[list[float]]:
    """Outer outlines of one piece as flat ``[x1, y1, x2, y2, ...]`` lists of at least 3 points."""
    import cv2

    contours, _ = cv2.findContours(piece.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[float(v) for v in c.reshape(-1)] for c in contours if len(c) >= 3]


class DrywallQAFunction:
    """A CVAT detection function (``spec`` + ``detect``) around a drywallqa predictor.

    Args:
        model: A ``--model`` value (None: ``$DRYWALLQA_MODEL``, else the shipped model), or a
            :class:`~drywallqa.inference.Predictor` to use as is.
        labels: Label names (see :func:`label_prompts`).
        threshold: Mask probability threshold (None: the model's calibrated ones, else 0.5).
        runtime: ``auto``, ``torch``, ``onnx`` or ``tensorrt`` (see ``load_predictor``).
        prompt_config: Prompt classes; the built-in ones by default.
        qa_rules: Gives ``min_component_area_px``; the built-in rules by default.
    """

    def __init__(self, model: str | Predictor | None = None, *, labels: str | Sequence[str] | None = None,
                 threshold: float | None = None, runtime: str = "auto", prompt_config: PromptConfig | None = None,
                 qa_rules: QARules | None = None):
        self.prompts = label_prompts(labels, prompt_config)
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, index, type="mask") for index, name in enumerate(self.prompts)])
        self._model = model
        self._options = {"threshold": threshold, "runtime": runtime}
        self.min_area_px = (qa_rules or QARules.default()).min_component_area_px
        self._predictor = model if isinstance(model, Predictor) else None

    @property
    def predictor(self) -> Predictor:
        """The model, loaded at the first image (cvat-cli loads the function before it has any)."""
        if self._predictor is None:
            from drywallqa.inference import load_predictor

            spec = self._model if self._model is not None else os.environ.get(MODEL_ENV) or None
            self._predictor = load_predictor(spec, **self._options)
        return self._predictor

    def detect(self, context: cvataa.DetectionFunctionContext, image) -> list:
        """Mask (or polygon) shapes of every label on one frame.

        Args:
            context: CVAT's context: ``conf_threshold`` (masks below it are left out) and
                ``conv_mask_to_poly`` (outlines as polygons instead of masks).
            image: The frame, a PIL image.

        Returns:
            ``LabeledShapeRequest`` objects with the spec's label ids, frame 0, and the mask's
            confidence as ``score``.
        """
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        prompts = list(dict.fromkeys(self.prompts.values()))
        outcomes = dict(zip(prompts, self.predictor.predict_batch([pixels] * len(prompts), prompts)))
        minimum = context.conf_threshold
        shapes = []
        for label_id, prompt in enumerate(self.prompts.values()):
            outcome = outcomes[prompt]
            score = float(outcome.confidence)
            if minimum is not None and score < minimum:
                continue
            for piece in mask_pieces(outcome.mask, self.min_area_px):
                if context.conv_mask_to_poly:
                    shapes += [cvataa.polygon(label_id, points, score=score) for points in piece_polygons(piece)]
                else:
                    shapes.append(cvataa.mask(label_id, encode_mask(piece), score=score))
        return shapes


def create(model: str | None = None, labels: str | None = None, threshold: float | None = None,
           runtime: str = "auto") -> DrywallQAFunction:
    """The function with ``cvat-cli``'s ``-p`` parameters (``-p model=str:DIR -p threshold=float:0.4``)."""
    return DrywallQAFunction(model, labels=labels, threshold=threshold, runtime=runtime)


_default = DrywallQAFunction()
#: The default function's spec (module-level, for ``annotate_task(client, task_id, this_module)``).
spec = _default.spec


def detect(context: cvataa.DetectionFunctionContext, image) -> list:
    """:meth:`DrywallQAFunction.detect` of the default function."""
    return _default.detect(context, image)
