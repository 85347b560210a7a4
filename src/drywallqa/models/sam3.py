"""``sam3``: zero-shot text-prompted segmentation with SAM 3 (``transformers.Sam3Model``).

SAM 3 detects every instance of a concept named by a short noun phrase and predicts a mask per
instance. Here, per image and prompt, the instances whose score
``sigmoid(instance logit) * sigmoid(presence logit)`` reaches ``score_threshold`` are merged
into one binary mask by the maximum of their mask logits (the maximum of their probabilities).

Layout (``facebook/sam3``)::

    prompt --SAM 3 CLIP text tower + projection (frozen, cached per prompt)--> (32 tokens x 256, mask)
    image --resize 1008--> ViT + FPN --> DETR encoder/decoder (200 queries) --> instance masks (288 x 288),
          instance scores, presence score --merge--> (B, 1, H, W) at the input resolution
    confidence = best kept instance score, or 1 - presence score when no instance is kept

The prompt embedding is the projected text tokens followed by their attention mask, flattened:
``D = 32 * (256 + 1)``; :meth:`Sam3Segmenter.forward` unflattens it and passes it as SAM 3's
``text_embeds``. The text tower is a plain attribute, not a submodule (like every drywallqa text
encoder), read from ``weights``.

Evaluation and prediction only: :meth:`~Sam3Segmenter.segment` in training mode raises, so
``drywallqa train --model sam3`` stops with that message at its first step. The image encoder
and the parts a text prompt never reaches (box encoder, box head, semantic head, an unused
pixel-decoder stage) are frozen. The DETR encoder/decoder and the instance heads keep
transformers' ``requires_grad``: gradients can be inspected, and ``torch.export`` needs it (with
the DETR decoder frozen, tracing transformers' box position bias hits a data-dependent shape in
torch 2.13). Nothing trains them.

Needs transformers >= 5.0 (the first release with ``Sam3Model``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models.base import ModelOutput, PromptModelConfig, check_image_size
from drywallqa.models.registry import register_model
from drywallqa.models.sam_parts import merge_prompt_masks
from drywallqa.models.text import TextEncoder
from drywallqa.models.transformers_base import (
    TransformersPromptModel,
    probability_to_logit,
    resize_pixels,
    upsample_logits,
)
from drywallqa.models.weights import load_hf_model, load_pretrained, load_tokenizer

DEFAULT_SAM3_WEIGHTS = "facebook/sam3"
#: SAM 3's image processor normalises to [-1, 1].
SAM3_PIXEL_MEAN = (0.5, 0.5, 0.5)
SAM3_PIXEL_STD = (0.5, 0.5, 0.5)
HOW_TO_PASS = "--model sam3:DIR"


def import_sam3() -> tuple[Any, Any]:
    """``(Sam3Config, Sam3Model)`` from transformers.

    Raises:
        DrywallQAError: Naming the version needed, when the installed transformers has no SAM 3.
    """
    try:
        from transformers import Sam3Config, Sam3Model
    except ImportError as exc:
        import transformers

        raise DrywallQAError(
            f"sam3 needs transformers >= 5.0 (Sam3Model); this environment has {transformers.__version__}: "
            "pip install -U 'transformers>=5'"
        ) from exc
    return Sam3Config, Sam3Model


class Sam3TextEncoder(TextEncoder):
    """SAM 3's prompt features: the CLIP text tower's tokens projected to the DETR width, plus their mask.

    Args:
        text_model: SAM 3's ``CLIPTextModelWithProjection``, or None to read it from ``weights``
            on first use (a model rebuilt by ``from_pretrained``).
        text_projection: SAM 3's ``text_projection`` (``Linear``), or None likewise.
        weights: Hub id or folder of the SAM 3 checkpoint (tokenizer, and the tower when not given).
        length: Tokens per prompt (SAM 3 pads to 32).
        hidden: Width of the projected tokens.
    """

    name = "sam3-text"

    def __init__(
        self,
        text_model: nn.Module | None,
        text_projection: nn.Module | None,
        weights: str | None,
        length: int,
        hidden: int,
    ):
        super().__init__()
        # The text tower: given, or read with the tokenizer on first use.
        self.text_model: Any = text_model
        self.text_projection: Any = text_projection
        self.weights = weights
        self.length, self.hidden = length, hidden
        self.dim = length * (hidden + 1)
        self._tokenizer: Any = None  # loaded on first use

    def _load(self) -> None:
        if self.weights is None:
            raise ConfigError("sam3 needs weights (a hub id or folder) to read its tokenizer and text tower from")
        self._tokenizer = load_tokenizer(self.weights, what="SAM 3 tokenizer", how_to_pass=HOW_TO_PASS)
        if self.text_model is None:
            _, sam3_model = import_sam3()
            full = load_pretrained(
                lambda source, local: sam3_model.from_pretrained(source, local_files_only=local),
                self.weights,
                what="SAM 3",
                how_to_pass=HOW_TO_PASS,
            )
            self.text_model, self.text_projection = full.text_encoder.eval(), full.text_projection.eval()

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        if self._tokenizer is None:
            self._load()
        batch = self._tokenizer(
            prompts, padding="max_length", truncation=True, max_length=self.length, return_tensors="pt"
        )
        device = self.text_projection.weight.device
        tokens = self.text_model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).last_hidden_state
        projected = self.text_projection(tokens)  # (n, length, hidden)
        return torch.cat([projected.flatten(1), batch["attention_mask"].to(projected)], dim=1)


@dataclass
class Sam3SegmenterConfig(PromptModelConfig):
    """Configuration of :class:`Sam3Segmenter`.

    Attributes:
        text_encoder: Always ``"sam3-text"``: SAM 3's own text tower.
        image_size: Side of the square input (a multiple of 32); resized to SAM 3's 1008 inside.
        weights: SAM 3 checkpoint, hub id or folder.
        pretrained: Load the weights (False: random, for tests).
        architecture: SAM 3's transformers config, filled in from the weights.
        score_threshold: Instances scoring below this are dropped before merging (the default
            of transformers' ``post_process_instance_segmentation``).
        text_length: Tokens per prompt (at most the text tower's positions).
    """

    text_encoder: str = "sam3-text"
    image_size: int = 1024
    weights: str | None = DEFAULT_SAM3_WEIGHTS
    pretrained: bool = True
    architecture: dict | None = None
    score_threshold: float = 0.3
    text_length: int = 32

    def __post_init__(self) -> None:
        if self.text_encoder != "sam3-text":
            raise ConfigError(
                f"sam3 uses its own text tower: text_encoder must be 'sam3-text', got {self.text_encoder!r}"
            )
        check_image_size(self.image_size)
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.text_length < 1:
            raise ConfigError(f"text_length must be >= 1, got {self.text_length}")


@register_model("sam3")
class Sam3Segmenter(TransformersPromptModel):
    """SAM 3 instances merged into one mask per prompt (see the module docstring).

    Args:
        config: Settings; defaults to :class:`Sam3SegmenterConfig` ``()``.
        load_pretrained: Read the weights when ``config.pretrained``.

    Example:
        >>> model = build_from_spec("sam3:/models/sam3")                                   # doctest: +SKIP
        >>> model.segment(torch.rand(1, 3, 1024, 1024), ["segment crack"]).mask_logits.shape  # doctest: +SKIP
        torch.Size([1, 1, 1024, 1024])
    """

    config_class = Sam3SegmenterConfig
    config: Sam3SegmenterConfig
    text_encoder: Sam3TextEncoder
    trainable = False
    zero_shot = True

    def __init__(self, config: Sam3SegmenterConfig | None = None, *, load_pretrained: bool = True):
        config = config if config is not None else Sam3SegmenterConfig()
        sam3_config, sam3_model = import_sam3()
        load_weights = config.pretrained and load_pretrained
        sam3, config.architecture = load_hf_model(
            sam3_model,
            sam3_config,
            weights=config.weights,
            architecture=config.architecture,
            load_weights=load_weights,
            what="SAM 3",
            how_to_pass=HOW_TO_PASS,
        )
        # The text tower leaves the module tree: prompts are embedded once, outside forward, and
        # text weights stay out of the checkpoint (read from `weights`, like every text encoder).
        text_model, text_projection = sam3.text_encoder.eval(), sam3.text_projection.eval()
        del sam3.text_encoder, sam3.text_projection
        if config.pretrained and not load_pretrained:
            text_model = text_projection = None  # from_pretrained: read the real tower from weights on first use
        length = min(config.text_length, int(sam3.config.text_config.max_position_embeddings))
        hidden = int(sam3.config.detr_encoder_config.hidden_size)
        text_encoder = Sam3TextEncoder(text_model, text_projection, config.weights, length, hidden)
        if text_model is not None:
            text_model.requires_grad_(False)
            text_projection.requires_grad_(False)
        super().__init__(config, SAM3_PIXEL_MEAN, SAM3_PIXEL_STD, text_encoder)
        self.sam3 = sam3
        self.freeze()

    def frozen_modules(self) -> list[nn.Module]:
        sam3 = self.sam3
        pixel_decoder = sam3.mask_decoder.pixel_decoder
        # The pixel decoder has one stage per upsampling step, but SAM 3 feeds it one level fewer.
        used_stages = len(sam3.config.vision_config.scale_factors) - 2
        return [
            sam3.vision_encoder,  # the image encoder, frozen in every drywallqa architecture
            sam3.geometry_encoder,  # box prompts: not on the text path
            sam3.detr_decoder.box_head,  # box refinement: its reference boxes are detached
            sam3.mask_decoder.semantic_projection,  # the semantic head: instances are merged instead
            *pixel_decoder.conv_layers[used_stages:],
            *pixel_decoder.norms[used_stages:],
        ]

    def image_encoder_module(self) -> nn.Module:
        return self.sam3.vision_encoder

    @property
    def native_image_size(self) -> int:
        return int(self.sam3.config.vision_config.image_size)

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata,
            "score_threshold": self.config.score_threshold,
            "merge": "max over instances scoring >= score_threshold",
        }

    def forward_normalized(self, pixels: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        size = tuple(pixels.shape[-2:])
        length, hidden = self.text_encoder.length, self.text_encoder.hidden
        text_features = prompt_embeddings[:, : length * hidden].reshape(-1, length, hidden)
        text_mask = prompt_embeddings[:, length * hidden :] > 0.5
        out = self.sam3(
            pixel_values=resize_pixels(pixels, self.native_image_size),
            text_embeds=BaseModelOutputWithPooling(pooler_output=text_features),
            attention_mask=text_mask,
        )
        presence = torch.sigmoid(out.presence_logits.reshape(-1, 1))
        scores = torch.sigmoid(out.pred_logits) * presence  # (B, Q)
        kept = scores >= self.config.score_threshold
        mask_logits = merge_prompt_masks(out.pred_masks, kept)
        best = torch.where(kept, scores, torch.zeros_like(scores)).amax(dim=1)
        confidence = torch.where(kept.any(dim=1), best, 1.0 - presence[:, 0])
        return ModelOutput(upsample_logits(mask_logits, size), probability_to_logit(confidence))
