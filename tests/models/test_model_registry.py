"""Model registry: build by name, and errors that list what is valid."""

from __future__ import annotations

import pytest

from drywallqa.errors import ConfigError
from drywallqa.models import MODEL_REGISTRY, PromptUNet, available_models, build_model, register_model

TINY = {"pretrained": False, "text_encoder": "hashing"}


def test_promptunet_is_registered() -> None:
    assert "promptunet" in available_models()
    assert MODEL_REGISTRY["promptunet"] is PromptUNet
    assert PromptUNet.name == "promptunet"


def test_build_model_applies_overrides() -> None:
    model = build_model("promptunet", encoder="lite1", decoder_channels=[64, 48, 32, 24], **TINY)
    assert isinstance(model, PromptUNet)
    assert model.config.encoder == "lite1"
    assert model.config.decoder_channels == (64, 48, 32, 24)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown model 'unet'; expected one of: .*promptunet"):
        build_model("unet")


def test_unknown_config_field_lists_valid_fields() -> None:
    with pytest.raises(ConfigError, match="backbone.*expected some of: .*encoder"):
        build_model("promptunet", backbone="lite0", **TINY)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"encoder": "resnet50"}, "lite0, lite1, lite2"),
        ({"text_encoder": "clip"}, "minilm, hashing"),
        ({"image_size": 450}, "multiple of 32"),
        ({"image_size": 8192}, "multiple of 32 up to 4096"),
        ({"image_size": True}, "multiple of 32"),
        ({"decoder_channels": (64, 0)}, "positive ints"),
        ({"decoder_channels": (64,) * 6}, "1 to 5"),
    ],
)
def test_invalid_config_values_are_rejected(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model("promptunet", **{**TINY, **overrides})


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("promptunet")(type("Other", (PromptUNet,), {}))
    assert MODEL_REGISTRY["promptunet"] is PromptUNet


@pytest.mark.parametrize("name, args", [("clipseg", {}), ("two-stage", {"boxes": "full-image"})])
def test_every_model_config_checks_the_image_size_by_the_one_rule(name: str, args: dict) -> None:
    from drywallqa.models import get_model_class

    with pytest.raises(ConfigError, match="multiple of 32 up to 4096"):
        get_model_class(name).config_class(image_size=96 + 1, **args)
