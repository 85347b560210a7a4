"""``clipseg``: CLIPSeg (``transformers.CLIPSegForImageSegmentation``) behind the drywallqa interface.

Layout (``CIDAS/clipseg-rd64-refined``)::

    prompt --CLIP text tower (frozen, cached per prompt)--> conditional embedding (512,)
    image --resize 352--> CLIP ViT-B/16 (frozen), layers 3, 6, 9 --> 3 x (485, 768)
          --CLIPSeg decoder (trained, FiLM on the conditional embedding)--> logits (352 x 352)
          --bilinear--> (B, 1, H, W) at the input resolution
    confidence = logit(soft IoU of the mask) + MLP[CLS of layer 9, conditional embedding, mask stats] (trained)

The prompt embedding :meth:`~ClipSeg.embed_prompts` returns *is* CLIPSeg's conditional
embedding (the projected CLIP text features), computed once per prompt by the frozen text tower
that is part of the checkpoint, so :meth:`~ClipSeg.forward` stays ``(images, embeddings)`` like
every other model and any mix of prompts in a batch works.

CLIPSeg has no IoU head. The confidence is derived from the mask logits (the soft IoU of
:func:`~drywallqa.models.transformers_base.soft_mask_iou`: near 1 for sharp, decided masks) plus a small
trained correction whose last layer starts at zero: zero-shot it is the derived score,
fine-tuned the shared loss (MSE against the true IoU) calibrates it.

Checkpoints store every weight (the frozen CLIP towers included, so a folder is self-contained)
and record ``weights``, from which only the tokenizer is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from drywallqa.errors import ConfigError
from drywallqa.models.base import ModelOutput, PromptModelConfig, check_image_size
from drywallqa.models.registry import register_model
from drywallqa.models.text import TextEncoder
from drywallqa.models.transformers_base import (
    TransformersPromptModel,
    probability_to_logit,
    resize_pixels,
    soft_mask_iou,
    upsample_logits,
)
from drywallqa.models.weights import load_hf_model, load_tokenizer

DEFAULT_CLIPSEG_WEIGHTS = "CIDAS/clipseg-rd64-refined"
#: CLIPSeg's image processor normalises with ImageNet statistics.
CLIPSEG_PIXEL_MEAN = (0.485, 0.456, 0.406)
CLIPSEG_PIXEL_STD = (0.229, 0.224, 0.225)
HOW_TO_PASS = "--model clipseg:DIR (evaluate, predict) or --set model.args.weights=DIR (train)"


class ClipSegTextEncoder(TextEncoder):
    """CLIPSeg's conditional embeddings from its own CLIP text tower, cached per prompt.

    Unlike the sentence encoders these are not normalised: CLIPSeg's decoder was trained on the
    raw projected CLIP features. The tower belongs to the model (it is in its checkpoint and
    moves with it); this object only holds a reference and the tokenizer, loaded from
    ``tokenizer_source`` on first use.

    Args:
        clip: The ``CLIPSegModel`` inside ``CLIPSegForImageSegmentation``.
        tokenizer_source: Hub id or folder with the tokenizer files.
    """

    name = "clip"

    def __init__(self, clip: nn.Module, tokenizer_source: str | None):
        super().__init__()
        self._clip = clip
        self.tokenizer_source = tokenizer_source
        self.dim = int(clip.config.projection_dim)
        self.max_length = int(clip.config.text_config.max_position_embeddings)
        self._tokenizer: Any = None  # loaded on first use

    def _encode_uncached(self, prompts: list[str]) -> Tensor:
        if self._tokenizer is None:
            if self.tokenizer_source is None:
                raise ConfigError("clipseg needs weights (a hub id or folder) to read its tokenizer from")
            self._tokenizer = load_tokenizer(self.tokenizer_source, what="CLIPSeg tokenizer", how_to_pass=HOW_TO_PASS)
        clip = self._clip
        device = clip.text_projection.weight.device
        batch = self._tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return clip.get_text_features(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).pooler_output


class DerivedConfidenceHead(nn.Module):
    """Confidence logit: ``logit(soft_mask_iou(mask))`` plus a trained MLP correction (zero at start).

    The mask logits are detached: the confidence loss must not reshape the mask.

    Args:
        image_dim: Size of the pooled image feature.
        embed_dim: Size of the prompt embedding.
        hidden: MLP width.
    """

    def __init__(self, image_dim: int, embed_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(image_dim + embed_dim + 2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, mask_logits: Tensor, image_feature: Tensor, prompt_embeddings: Tensor) -> Tensor:
        """
        Args:
            mask_logits: ``(B, 1, h, w)``.
            image_feature: ``(B, image_dim)``.
            prompt_embeddings: ``(B, embed_dim)``.

        Returns:
            ``(B,)`` confidence logits.
        """
        mask_logits = mask_logits.detach()
        derived = soft_mask_iou(mask_logits).to(image_feature.dtype)
        area = torch.sigmoid(mask_logits).mean(dim=(1, 2, 3)).to(image_feature.dtype)
        features = torch.cat(
            [image_feature, prompt_embeddings.to(image_feature.dtype), derived[:, None], area[:, None]], 1
        )
        return probability_to_logit(derived) + self.mlp(features).squeeze(1)


@dataclass
class ClipSegConfig(PromptModelConfig):
    """Configuration of :class:`ClipSeg`.

    Attributes:
        text_encoder: Always ``"clip"``: CLIPSeg's own text tower.
        image_size: Side of the square input (a multiple of 32); resized to CLIPSeg's 352 inside.
        weights: CLIPSeg checkpoint, hub id or folder (also the tokenizer's source).
        pretrained: Load the weights (False: random, for tests).
        architecture: CLIPSeg's transformers config, filled in from the weights.
        confidence_hidden: Width of the confidence correction MLP.
        embedding_cache: Folder caching the frozen ViT's activations (see
            :class:`~drywallqa.models.embedding_cache.EmbeddingCache`); None: off.
    """

    text_encoder: str = "clip"
    image_size: int = 352
    weights: str | None = DEFAULT_CLIPSEG_WEIGHTS
    pretrained: bool = True
    architecture: dict | None = None
    confidence_hidden: int = 64
    embedding_cache: str | None = None

    def __post_init__(self) -> None:
        if self.text_encoder != "clip":
            raise ConfigError(
                f"clipseg conditions on its own CLIP text tower: text_encoder must be 'clip', got {self.text_encoder!r}"
            )
        check_image_size(self.image_size)
        if self.confidence_hidden < 1:
            raise ConfigError(f"confidence_hidden must be >= 1, got {self.confidence_hidden}")


@register_model("clipseg")
class ClipSeg(TransformersPromptModel):
    """CLIPSeg with a frozen CLIP backbone, a trained decoder and a derived-plus-trained confidence.

    Args:
        config: Settings; defaults to :class:`ClipSegConfig` ``()``.
        load_pretrained: Read the pretrained weights when ``config.pretrained``;
            :meth:`from_pretrained` passes False since the checkpoint holds them.

    Example:
        >>> model = build_model("clipseg", weights="/models/clipseg-rd64-refined").eval()   # doctest: +SKIP
        >>> model.segment(torch.rand(2, 3, 352, 352), ["segment crack", "segment taping area"])  # doctest: +SKIP
    """

    config_class = ClipSegConfig
    config: ClipSegConfig
    zero_shot = True

    def __init__(self, config: ClipSegConfig | None = None, *, load_pretrained: bool = True):
        from transformers import CLIPSegConfig as TransformersCLIPSegConfig
        from transformers import CLIPSegForImageSegmentation

        config = config if config is not None else ClipSegConfig()
        clipseg, config.architecture = load_hf_model(
            CLIPSegForImageSegmentation,
            TransformersCLIPSegConfig,
            weights=config.weights,
            architecture=config.architecture,
            load_weights=config.pretrained and load_pretrained,
            what="CLIPSeg",
            how_to_pass=HOW_TO_PASS,
        )
        super().__init__(
            config, CLIPSEG_PIXEL_MEAN, CLIPSEG_PIXEL_STD, ClipSegTextEncoder(clipseg.clip, config.weights)
        )
        self.clipseg = clipseg
        self.extract_layers = tuple(int(i) for i in clipseg.config.extract_layers)
        vision_hidden = int(clipseg.config.vision_config.hidden_size)
        self.confidence_head = DerivedConfidenceHead(vision_hidden, self.embed_dim, config.confidence_hidden)
        self.freeze()
        self.enable_embedding_cache(config.embedding_cache)

    def frozen_modules(self) -> list[nn.Module]:
        return [self.clipseg.clip]

    @property
    def encoder(self) -> nn.Module:
        """CLIP's vision tower (frozen); the training module looks for ``model.encoder``."""
        return self.clipseg.clip.vision_model

    def image_encoder_module(self) -> nn.Module:
        return self.clipseg.clip.vision_model

    @property
    def native_image_size(self) -> int:
        return int(self.clipseg.config.vision_config.image_size)

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata,
            "text_encoder": "CLIPSeg's CLIP text tower (frozen)",
            "frozen": ["clipseg.clip (vision and text towers)"],
            "confidence": "soft IoU of the mask + trained correction",
        }

    def _vision_activations(self, pixels: Tensor) -> dict[str, Tensor]:
        """The frozen ViT's outputs at ``extract_layers``: ``{"activations": (B, layers, tokens, hidden)}``.

        Runs only up to the deepest extracted layer (CLIPSeg ignores the rest).
        """
        vision = self.clipseg.clip.vision_model
        with torch.no_grad():
            hidden = vision.pre_layrnorm(vision.embeddings(pixels, interpolate_pos_encoding=False))
            activations = []
            for index, layer in enumerate(vision.encoder.layers[: max(self.extract_layers) + 1]):
                hidden = layer(hidden, None)
                if index in self.extract_layers:
                    activations.append(hidden)
        return {"activations": torch.stack(activations, dim=1)}

    def forward_normalized(self, pixels: Tensor, prompt_embeddings: Tensor) -> ModelOutput:
        size = tuple(pixels.shape[-2:])
        native = resize_pixels(pixels, self.native_image_size)
        activations = self.encode_images_cached(native, self._vision_activations)["activations"]
        layers = list(activations.unbind(dim=1))
        logits = self.clipseg.decoder(layers, prompt_embeddings).logits
        # The decoder returns (B, h, w) (its squeeze(1) keeps the batch axis, also for B = 1).
        mask_logits = logits.unsqueeze(1) if logits.ndim == 3 else logits
        confidence = self.confidence_head(mask_logits, layers[-1][:, 0], prompt_embeddings)
        return ModelOutput(upsample_logits(mask_logits, size), confidence)
