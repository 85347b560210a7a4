"""Text-prompted binary segmentation models behind one interface and one name registry.

Example:
    >>> import torch
    >>> from drywallqa.models import build_model
    >>> model = build_model("promptunet", pretrained=False, text_encoder="hashing").eval()
    >>> out = model.segment(torch.rand(1, 3, 64, 64), ["segment crack"])
    >>> tuple(out.mask_logits.shape)
    (1, 1, 64, 64)
"""

from drywallqa.models.base import ModelOutput, PromptModelConfig, PromptSegmentationModel
from drywallqa.models.promptunet import PromptUNet, PromptUNetConfig
from drywallqa.models.registry import (
    MODEL_REGISTRY,
    available_models,
    build_model,
    get_model_class,
    register_model,
)
from drywallqa.models.text import HashingTextEncoder, MiniLMTextEncoder, TextEncoder, build_text_encoder

__all__ = [
    "MODEL_REGISTRY",
    "HashingTextEncoder",
    "MiniLMTextEncoder",
    "ModelOutput",
    "PromptModelConfig",
    "PromptSegmentationModel",
    "PromptUNet",
    "PromptUNetConfig",
    "TextEncoder",
    "available_models",
    "build_model",
    "build_text_encoder",
    "get_model_class",
    "register_model",
]
