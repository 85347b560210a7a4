"""Name -> model class registry: ``build_model("promptunet", encoder="lite1")``.

Architectures register themselves with :func:`register_model` when :mod:`drywallqa.models` is
imported; checkpoints store the registry name so :meth:`PromptSegmentationModel.from_pretrained`
can rebuild the right class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from drywallqa.errors import ConfigError

if TYPE_CHECKING:
    from drywallqa.models.base import ModelFactory, PromptModelConfig, PromptSegmentationModel

ModelClass = TypeVar("ModelClass", bound="type[PromptSegmentationModel]")

MODEL_REGISTRY: dict[str, type[PromptSegmentationModel]] = {}


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator adding a :class:`PromptSegmentationModel` subclass under ``name``.

    Also sets the class attribute ``name``, which is written into saved checkpoints.

    Raises:
        ValueError: If ``name`` is already taken by another class.
    """

    def decorator(cls: ModelClass) -> ModelClass:
        if name in MODEL_REGISTRY and MODEL_REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {MODEL_REGISTRY[name].__qualname__}")
        cls.name = name
        MODEL_REGISTRY[name] = cls
        return cls

    return decorator


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODEL_REGISTRY)


def get_model_class(name: str) -> type[PromptSegmentationModel]:
    """Look up a registered model class.

    Raises:
        ConfigError: For an unknown name, listing the registered ones.
    """
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"unknown model {name!r}; expected one of: {', '.join(available_models())}")
    return MODEL_REGISTRY[name]


def build_model(name: str, *, load_pretrained: bool = True, **overrides: Any) -> PromptSegmentationModel:
    """Build a registered model from its default config with some fields overridden.

    Args:
        name: Registry name, e.g. ``"promptunet"``.
        load_pretrained: Read the pretrained weights the config asks for; False leaves them
            to the caller (a training pack carries them: ``load_pretrained_state``).
        **overrides: Fields of the model's config dataclass, e.g. ``encoder="lite1"``,
            ``pretrained=False``, ``text_encoder="hashing"``.

    Returns:
        The model, in training mode, on CPU.

    Raises:
        ConfigError: For an unknown name or config field, listing the valid ones.

    Example:
        >>> model = build_model("promptunet", pretrained=False, text_encoder="hashing")
        >>> model.name
        'promptunet'
    """
    build: ModelFactory = get_model_class(name)
    return build(model_config(name, **overrides), load_pretrained=load_pretrained)


def model_config(name: str, **overrides: Any) -> PromptModelConfig:
    """The checked config of a registered model, without building it (no weights are loaded).

    Raises:
        ConfigError: For an unknown name, an unknown field (listing the valid ones) or a bad value.
    """
    cls = get_model_class(name)
    valid = [f.name for f in dataclasses.fields(cls.config_class)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown {name} config field(s) {', '.join(unknown)}; expected some of: {', '.join(valid)}")
    try:
        return cls.config_class(**overrides)
    except TypeError as exc:
        raise ConfigError(f"{name} config: {exc}") from exc
