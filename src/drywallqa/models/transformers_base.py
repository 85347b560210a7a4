"""The base class of the models built on transformers checkpoints, and the tensor helpers they share.

:class:`TransformersPromptModel` (``clipseg``, ``textsam``, ``sam3``, ``two-stage``) brings its
own text encoder, keeps frozen parts in eval mode, refuses training for zero-shot models,
describes itself for reports and can cache its frozen image encoder's output on disk
(:class:`~drywallqa.models.embedding_cache.EmbeddingCache`). The helpers resize inputs to a
pretrained network's native size and back, and turn scores into confidence logits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.errors import ConfigError
from drywallqa.models.base import PromptModelConfig, PromptSegmentationModel, _is_exporting
from drywallqa.models.embedding_cache import EmbeddingCache
from drywallqa.models.text import TextEncoder

#: Logit given to pixels where a model predicts nothing at all (``sigmoid(-20) ≈ 2e-9``).
EMPTY_LOGIT = -20.0


def resize_pixels(pixels: Tensor, size: int) -> Tensor:
    """Resize ``(B, 3, H, W)`` to ``size x size`` (bilinear, antialiased when shrinking)."""
    if tuple(pixels.shape[-2:]) == (size, size):
        return pixels
    shrinking = pixels.shape[-1] > size or pixels.shape[-2] > size
    return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def upsample_logits(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(B, 1, h, w)`` logits bilinearly to ``size`` (the input resolution)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def probability_to_logit(probability: Tensor, eps: float = 1e-4) -> Tensor:
    """``logit(clamp(p, eps, 1 - eps))``: a score in ``[0, 1]`` as a confidence logit."""
    return torch.logit(probability.clamp(eps, 1.0 - eps))


def soft_mask_iou(mask_logits: Tensor) -> Tensor:
    """Expected IoU of the thresholded mask if pixels were foreground with their probability.

    ``(sum_{m} p + 1) / (|m| + sum_{not m} p + 1)`` with ``m = p > 0.5``: near 1 for confident,
    sharp masks (including a confident empty one), lower for hesitant ones. The ``+ 1`` (one
    pixel) keeps empty predictions finite.

    Args:
        mask_logits: ``(B, 1, H, W)``.

    Returns:
        ``(B,)`` in ``(0, 1]``.
    """
    probabilities = torch.sigmoid(mask_logits.float())
    predicted = (probabilities > 0.5).to(probabilities.dtype)
    intersection = (probabilities * predicted).sum(dim=(1, 2, 3))
    union = predicted.sum(dim=(1, 2, 3)) + (probabilities * (1 - predicted)).sum(dim=(1, 2, 3))
    return (intersection + 1.0) / (union + 1.0)


class TransformersPromptModel(PromptSegmentationModel):
    """Base of the models built on transformers checkpoints (``clipseg``, ``textsam``, ``sam3``, ``two-stage``).

    Differences from :class:`~drywallqa.models.base.PromptSegmentationModel`:

    - the subclass brings its text encoder (CLIPSeg's CLIP text tower, a CLIP checkpoint, a
      prompt-class encoder) instead of building ``config.text_encoder`` by name;
    - :meth:`frozen_modules` stay in eval mode in ``model.train()``, so dropout never touches
      the frozen encoders;
    - zero-shot models (:attr:`trainable` False) raise from :meth:`segment` in training mode,
      which is the call the training loop makes;
    - :attr:`display_name` and :attr:`metadata` describe the configuration for reports (e.g.
      that box prompts came from ground truth);
    - the frozen image encoder's output can be cached on disk (:meth:`encode_images_cached`).

    Attributes:
        trainable: False for zero-shot models: ``drywallqa train`` refuses them.
        zero_shot: Usable straight from pretrained weights (``--model NAME:WEIGHTS``); False when
            some part must be fine-tuned first (textsam's text projection).
    """

    trainable: ClassVar[bool] = True
    zero_shot: ClassVar[bool] = False

    def __init__(
        self,
        config: PromptModelConfig,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        text_encoder: TextEncoder,
    ):
        # The base builds config.text_encoder by name from drywallqa's own encoders; these models
        # bring theirs, so it builds the weight-free one and it is replaced right away.
        super().__init__(PromptModelConfig(text_encoder="hashing", image_size=config.image_size), pixel_mean, pixel_std)
        self.config = config
        self.text_encoder = text_encoder
        self.embedding_cache: EmbeddingCache | None = None
        self._encoder_key: str | None = None

    # -- frozen parts ---------------------------------------------------------------------------
    def frozen_modules(self) -> list[nn.Module]:
        """Pretrained parts that are never trained (kept in eval mode, ``requires_grad`` False)."""
        return []

    def freeze(self) -> None:
        """Set ``requires_grad`` False on :meth:`frozen_modules` and put them in eval mode."""
        for module in self.frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True) -> TransformersPromptModel:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def segment(self, images: Tensor, prompts: Sequence[str]):
        """:meth:`embed_prompts` then :meth:`forward` (see the base class).

        Raises:
            ConfigError: In training mode with gradients on, for a zero-shot model.
        """
        if not self.trainable and self.training and torch.is_grad_enabled():
            raise ConfigError(
                f"{self.name} is zero-shot: it supports evaluation and prediction only, not training; "
                f"evaluate it with `drywallqa evaluate --model {self.name}:WEIGHTS --data ...`"
            )
        return super().segment(images, prompts)

    # -- the embedding cache --------------------------------------------------------------------
    def image_encoder_module(self) -> nn.Module | None:
        """The frozen image encoder whose outputs may be cached, or None."""
        return None

    def encoder_key(self) -> str:
        """Identifies the frozen image encoder: a hash of its name, input size and weights.

        Computed once (the encoder is frozen); hashing ViT-B's weights takes well under a second.
        """
        if self._encoder_key is None:
            encoder = self.image_encoder_module()
            digest = hashlib.blake2b(digest_size=8)
            digest.update(f"{self.name}:{type(encoder).__name__}:{self.native_image_size}".encode())
            if encoder is not None:
                for name, tensor in encoder.state_dict().items():
                    digest.update(name.encode())
                    digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._encoder_key = f"{self.name}-{digest.hexdigest()}"
        return self._encoder_key

    def enable_embedding_cache(self, directory: str | os.PathLike | None) -> None:
        """Cache the frozen image encoder's outputs under ``directory`` (None switches it off)."""
        self.embedding_cache = EmbeddingCache(directory) if directory else None

    def encode_images_cached(self, pixels: Tensor, encode: Callable[[Tensor], dict[str, Tensor]]) -> dict[str, Tensor]:
        """``encode(pixels)``, through the embedding cache when one is enabled (never while exporting)."""
        if self.embedding_cache is None or _is_exporting():
            return encode(pixels)
        return self.embedding_cache.get_or_compute(self.encoder_key(), pixels, encode)

    # -- description ----------------------------------------------------------------------------
    @property
    def native_image_size(self) -> int:
        """Side of the square input the pretrained network works at (inputs are resized to it)."""
        return self.config.image_size

    @property
    def display_name(self) -> str:
        """Name for reports: the registry name, plus what changes the meaning of the scores."""
        return self.name

    @property
    def metadata(self) -> dict[str, Any]:
        """What a report should record about this model (weights, frozen parts, prompt sources)."""
        return {
            "architecture": self.name,
            "weights": getattr(self.config, "weights", None),
            "trainable": self.trainable,
            "trainable_parameters": self.num_parameters(trainable_only=True),
            "parameters": self.num_parameters(),
        }
