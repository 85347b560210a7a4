"""What every ``--model`` value can be: :func:`build_from_spec` turns a spec into a model.

Specs are ``NAME[:WEIGHTS]`` for a zero-shot architecture, a folder written by
``save_pretrained``, a bare transformers checkpoint folder, or a YAML file with ``name`` and
``args``. The result is a model in eval mode; :func:`drywallqa.inference.model_predictor` wraps
it into a predictor.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drywallqa.errors import ConfigError
from drywallqa.files import read_json
from drywallqa.models.base import CONFIG_FILE, ModelFactory, PromptSegmentationModel
from drywallqa.models.registry import available_models, build_model, get_model_class
from drywallqa.yamlio import read_yaml

#: transformers ``model_type`` of a bare checkpoint folder -> the drywallqa model that runs it zero-shot.
ARCHITECTURE_OF_MODEL_TYPE = {"clipseg": "clipseg", "sam3": "sam3", "sam3_video": "sam3"}


def build_from_spec(
    spec: str | os.PathLike | None, overrides: Mapping[str, Any] | None = None
) -> PromptSegmentationModel | None:
    """Build the model a ``--model`` value names, or return None when it names none of these forms.

    Accepted forms:

    - a folder written by ``save_pretrained`` (``drywallqa train`` writes ``RUN/model``), or a
      file in it: loaded with :meth:`PromptSegmentationModel.from_pretrained`;
    - ``NAME`` or ``NAME:WEIGHTS`` for a zero-shot architecture (``clipseg``, ``sam3``,
      ``two-stage``): built with ``weights=WEIGHTS`` (a hub id or a folder; the default
      checkpoint when omitted), e.g. ``clipseg:/models/clipseg-rd64-refined``;
    - a bare transformers checkpoint folder whose ``config.json`` has ``model_type`` clipseg or
      sam3: the same as ``clipseg:DIR`` / ``sam3:DIR``;
    - a YAML file with ``name`` and ``args`` (the ``model`` section of a training config), e.g.
      ``{name: two-stage, args: {weights: DIR, boxes: "coco:det.json", box_images: ann.json}}``.

    Args:
        spec: The ``--model`` value; None returns None (the caller's default model).
        overrides: Config fields applied on top (e.g. ``{"boxes": "annotations:data/cracks"}``);
            for a saved folder only fields that do not change the weights make sense.

    Returns:
        The model in eval mode, or None when ``spec`` is a path that exists but is none of the
        above (the caller reports it), or does not exist and has no ``NAME:`` prefix.

    Raises:
        ConfigError: For ``NAME:...`` with an unknown name or a model that must be fine-tuned
            first (``textsam``, ``promptunet``), or invalid overrides.
        DrywallQAError: When weights cannot be found (one line with the download command).
    """
    if spec is None:
        return None
    overrides = dict(overrides or {})
    text = str(spec)
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"} and path.is_file():
        return _build_from_yaml(path, overrides)
    if path.exists():
        directory = path if path.is_dir() else path.parent
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            return None
        meta = read_json(config_path)
        if isinstance(meta, dict) and "model" in meta and "config" in meta:
            return _load_with_overrides(directory, overrides)
        model_type = meta.get("model_type", "") if isinstance(meta, dict) else ""
        if model_type in ARCHITECTURE_OF_MODEL_TYPE:
            return _build_zero_shot(ARCHITECTURE_OF_MODEL_TYPE[model_type], str(directory), overrides)
        if model_type in {"sam", "sam2", "sam_hq"}:
            raise ConfigError(
                f"{directory} is a SAM checkpoint, which needs box prompts or a trained text projection: "
                "evaluate it as two-stage with a box source (a YAML spec: name: two-stage, args: "
                f"{{weights: {directory}, "
                f"boxes: coco:FILE, ...}}), or fine-tune "
                f"textsam with `drywallqa train --model textsam --set model.args.weights={directory}`"
            )
        return None
    name, separator, weights = text.partition(":")
    if name in available_models():
        return _build_zero_shot(name, weights or None, overrides)
    if separator and len(name) > 1:  # not a Windows drive letter
        zero_shot = [n for n in available_models() if getattr(get_model_class(n), "zero_shot", False)]
        raise ConfigError(
            f"unknown model {name!r} in {text!r}; expected a model folder, a YAML file, or NAME[:WEIGHTS] "
            f"with NAME one of: {', '.join(zero_shot)}"
        )
    return None


def _build_zero_shot(name: str, weights: str | None, overrides: dict[str, Any]) -> PromptSegmentationModel:
    cls = get_model_class(name)
    if not getattr(cls, "zero_shot", False):
        raise ConfigError(
            f"{name} has parts that must be trained before it can predict; fine-tune it with "
            f"`drywallqa train --model {name} --set model.args.weights=WEIGHTS ...` and pass the run's model folder"
        )
    args = {**({"weights": weights} if weights else {}), **overrides}
    return build_model(name, **args).eval()


def _build_from_yaml(path: Path, overrides: dict[str, Any]) -> PromptSegmentationModel:
    data = read_yaml(path) or {}
    data = data.get("model", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ConfigError(f"{path}: expected a mapping with 'name' (a model name) and optional 'args'")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise ConfigError(f"{path}: 'args' must be a mapping of config fields")
    return _build_zero_shot(data["name"], None, {**args, **overrides})


def _load_with_overrides(directory: Path, overrides: dict[str, Any]) -> PromptSegmentationModel:
    model = PromptSegmentationModel.from_pretrained(directory)
    if not overrides:
        return model
    cls = type(model)
    valid = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(
            f"unknown {cls.name} config field(s) {', '.join(unknown)}; expected some of: {', '.join(sorted(valid))}"
        )
    build: ModelFactory = cls
    rebuilt = build(dataclasses.replace(model.config, **overrides), load_pretrained=False)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    return rebuilt.eval()
