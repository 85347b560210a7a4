"""Text-prompted binary segmentation models behind one interface and one name registry.

Example:
    >>> import torch
    >>> from drywallqa.models import build_model
    >>> model = build_model("promptunet", pretrained=False, text_encoder="hashing").eval()
    >>> out = model.segment(torch.rand(1, 3, 64, 64), ["segment crack"])
    >>> tuple(out.mask_logits.shape)
    (1, 1, 64, 64)

The transformers-based architectures (``clipseg``, ``textsam``, ``sam3``, ``two-stage``) import
transformers only when one is built, so this import stays fast. ``build_from_spec`` turns a
``--model`` value (``clipseg:DIR``, a trained folder, ...) into a model.
"""

from drywallqa.models.base import ModelOutput, PromptModelConfig, PromptSegmentationModel
from drywallqa.models.clipseg import ClipSeg, ClipSegConfig
from drywallqa.models.promptunet import PromptUNet, PromptUNetConfig
from drywallqa.models.registry import (
    MODEL_REGISTRY,
    available_models,
    build_model,
    get_model_class,
    model_config,
    register_model,
)
from drywallqa.models.sam3 import Sam3Segmenter, Sam3SegmenterConfig
from drywallqa.models.specs import build_from_spec
from drywallqa.models.text import HashingTextEncoder, MiniLMTextEncoder, TextEncoder, build_text_encoder
from drywallqa.models.textsam import TextSam, TextSamConfig
from drywallqa.models.two_stage import TwoStage, TwoStageConfig

__all__ = [
    "MODEL_REGISTRY",
    "ClipSeg",
    "ClipSegConfig",
    "HashingTextEncoder",
    "MiniLMTextEncoder",
    "ModelOutput",
    "PromptModelConfig",
    "PromptSegmentationModel",
    "PromptUNet",
    "PromptUNetConfig",
    "Sam3Segmenter",
    "Sam3SegmenterConfig",
    "TextEncoder",
    "TextSam",
    "TextSamConfig",
    "TwoStage",
    "TwoStageConfig",
    "available_models",
    "build_from_spec",
    "build_model",
    "build_text_encoder",
    "get_model_class",
    "model_config",
    "register_model",
]
