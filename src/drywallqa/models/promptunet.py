"""PromptUNet: an EfficientNet-Lite U-Net whose decoder is conditioned on the prompt with FiLM.

Layout (lite0; channels@stride)::

    encoder     16@/2  24@/4  40@/8  112@/16  320@/32 -- FiLM --> bottleneck
    decoder     bottleneck -> 96@/16 -> 64@/8 -> 48@/4 -> 32@/2 -- 1x1 --> logits@/2 -- bilinear x2 --> (B, 1, H, W)
                each step: nearest x2, concat the encoder map of that stride, 1x1 fuse,
                depthwise-separable 3x3 (residual), FiLM, ReLU
    confidence  [mean(bottleneck), mask-weighted mean(32@/2), mask area, prompt] -- MLP --> IoU logit

FiLM turns the prompt embedding into a per-channel scale and shift at every decoder scale, so the
same image features are decoded differently for "crack" and "taping area". The encoder never sees
the prompt: :meth:`~PromptUNet.encode` runs it once per photo and :meth:`~PromptUNet.decode` the
rest once per prompt. The decoder uses 1x1
fusion and depthwise-separable 3x3 refinement with nearest upsampling, which keeps it cheap on CPU
and made of ops every ONNX runtime has.

The default decoder stops at stride 2: a fifth, full-resolution stage (``decoder_channels`` with
five entries, e.g. ``(96, 64, 48, 32, 16)``) costs about as much as half the encoder on CPU at
448x448 (it touches 4x the pixels of the stride-2 stage) for a two-pixel refinement.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.errors import ConfigError
from drywallqa.models.base import ImageFeatures, ModelOutput, PromptModelConfig, PromptSegmentationModel
from drywallqa.models.encoders.efficientnet_lite import LITE_VARIANTS, EfficientNetLiteEncoder
from drywallqa.models.registry import register_model


@dataclass
class PromptUNetConfig(PromptModelConfig):
    """Configuration of :class:`PromptUNet`.

    Attributes:
        text_encoder: ``"minilm"`` or ``"hashing"`` (see :mod:`drywallqa.models.text`).
        image_size: Side of the square input, a multiple of 32.
        encoder: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        pretrained: Start the encoder from ImageNet weights (needs the weights package).
        decoder_channels: Output channels of the decoder stages, deepest first; stage ``i`` works
            at stride ``16 / 2**i``. Four stages end at stride 2, five at full resolution; the
            logits are upsampled bilinearly to the input size.
        stride2_skip: Feed the stride-2 encoder features to the stride-2 decoder stage.
        film: FiLM-condition every decoder stage on the prompt.
        film_bottleneck: Also FiLM-condition the deepest encoder features.
        film_hidden: Hidden width of the MLP that produces the FiLM parameters.
        confidence_hidden: Hidden width of the confidence (predicted IoU) MLP.
    """

    encoder: str = "lite0"
    pretrained: bool = True
    decoder_channels: tuple[int, ...] = (96, 64, 48, 32)
    stride2_skip: bool = True
    film: bool = True
    film_bottleneck: bool = True
    film_hidden: int = 256
    confidence_hidden: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder not in LITE_VARIANTS:
            raise ConfigError(f"unknown encoder {self.encoder!r}; expected one of: {', '.join(LITE_VARIANTS)}")
        self.decoder_channels = tuple(self.decoder_channels)
        valid_channels = all(isinstance(c, int) and c > 0 for c in self.decoder_channels)
        if not (1 <= len(self.decoder_channels) <= 5 and valid_channels):
            raise ConfigError(f"decoder_channels must be 1 to 5 positive ints, got {self.decoder_channels}")


class ConvBNReLU(nn.Sequential):
    """``k x k`` conv (no bias) + BatchNorm + optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip, fuse (1x1), refine (depthwise-separable 3x3, residual), FiLM, ReLU.

    The fuse convolution is computed in two parts that add up to it: the skip's share
    (:meth:`project_skip`, prompt-free, so once per image) and the input's share, taken at the
    input's resolution before the nearest upsampling (a 1x1 convolution commutes with it), which
    costs a quarter of the work per prompt and no concatenated map.

    Args:
        in_channels: Channels of the coarser input.
        skip_channels: Channels of the skip features at the output stride (0 for none).
        out_channels: Output channels.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.has_skip = skip_channels > 0
        self.fuse = ConvBNReLU(in_channels + skip_channels, out_channels, 1)
        self.refine = nn.Sequential(
            ConvBNReLU(out_channels, out_channels, 3, groups=out_channels),
            ConvBNReLU(out_channels, out_channels, 1, relu=False),
        )

    def batchnorm_pairs(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
        """The fuse convolution and its BatchNorm, which :meth:`forward` applies from the weights
        (for :func:`~drywallqa.inference.folding.fold_batchnorm`, which cannot see that call)."""
        return [(self.fuse[0], self.fuse[1])]

    def project_skip(self, skip: Tensor) -> Tensor:
        """The skip's share of the fuse convolution: ``(B, skip_channels, H, W) -> (B, out_channels, H, W)``."""
        return F.conv2d(skip, self.fuse[0].weight[:, self.in_channels :])

    def forward(self, x: Tensor, projected_skip: Tensor | None, film: tuple[Tensor, Tensor] | None) -> Tensor:
        """
        Args:
            x: ``(B, in_channels, h, w)``.
            projected_skip: :meth:`project_skip` of the ``(B, skip_channels, 2h, 2w)`` skip
                features, or None when built without a skip.
            film: ``(scale, shift)``, each ``(B, out_channels, 1, 1)``, or None.

        Returns:
            ``(B, out_channels, 2h, 2w)``.
        """
        # fuse(cat(up(x), skip)) == BN + ReLU of up(W_x x) + W_skip skip.
        # (The bias, None unless a BatchNorm was folded into the convolution, commutes with the upsampling.)
        x = F.interpolate(F.conv2d(x, self.fuse[0].weight[:, : self.in_channels], self.fuse[0].bias),
                          scale_factor=2.0, mode="nearest")
        if self.has_skip:
            x = x + projected_skip
        x = self.fuse[2](self.fuse[1](x))
        x = x + self.refine(x)
        if film is not None:
            x = film_modulate(x, film)
        return F.relu(x)


def film_modulate(x: Tensor, film: tuple[Tensor, Tensor]) -> Tensor:
    """``x * (1 + scale) + shift`` with ``scale``, ``shift`` of shape ``(B, C, 1, 1)``."""
    scale, shift = film
    return x * (1.0 + scale) + shift


class PromptFiLM(nn.Module):
    """Prompt embedding -> per-channel ``(scale, shift)`` for several feature maps.

    A shared hidden layer feeds one linear head per conditioned map. The heads start at zero, so
    the modulation starts as the identity and the pretrained features pass through unchanged.

    Args:
        embed_dim: Size ``D`` of the prompt embedding.
        channels: Channels of each conditioned feature map.
        hidden: Width of the shared hidden layer.
    """

    def __init__(self, embed_dim: int, channels: tuple[int, ...], hidden: int):
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(inplace=True))
        self.heads = nn.ModuleList(nn.Linear(hidden, 2 * c) for c in channels)
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, prompt_embeddings: Tensor) -> list[tuple[Tensor, Tensor]]:
        """
        Args:
            prompt_embeddings: ``(B, D)``.

        Returns:
            One ``(scale, shift)`` pair per feature map, each ``(B, C_i, 1, 1)``.
        """
        hidden = self.shared(prompt_embeddings)
        params = []
        for head in self.heads:
            scale, shift = head(hidden)[:, :, None, None].chunk(2, dim=1)
            params.append((scale, shift))
        return params


class ConfidenceHead(nn.Module):
    """Predicts the IoU of the predicted mask as a logit (like SAM's IoU head).

    Inputs are the globally pooled bottleneck, the last decoder map averaged under the predicted
    mask (what the model thinks it found), the predicted area and the prompt. The mask weights are
    detached so the confidence loss does not reshape the mask.

    Args:
        bottleneck_channels: Channels of the deepest (FiLM-ed) encoder map.
        decoder_channels: Channels of the last decoder map.
        embed_dim: Prompt embedding size.
        hidden: MLP width.
    """

    def __init__(self, bottleneck_channels: int, decoder_channels: int, embed_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(bottleneck_channels + decoder_channels + 1 + embed_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, bottleneck: Tensor, decoded: Tensor, mask_logits: Tensor, prompt_embeddings: Tensor) -> Tensor:
        """
        Args:
            bottleneck: ``(B, C5, h5, w5)``.
            decoded: ``(B, C, h, w)``, the last decoder map.
            mask_logits: ``(B, 1, h, w)`` at the resolution of ``decoded``.
            prompt_embeddings: ``(B, D)``.

        Returns:
            ``(B,)`` IoU logits.
        """
        weights = torch.sigmoid(mask_logits.detach())
        area = weights.sum(dim=(2, 3))
        # +1 keeps empty predictions finite; negligible next to any real mask area.
        inside = (decoded * weights).sum(dim=(2, 3)) / (area + 1.0)
        features = torch.cat([bottleneck.mean(dim=(2, 3)), inside, weights.mean(dim=(2, 3)), prompt_embeddings], dim=1)
        return self.mlp(features).squeeze(1)


@register_model("promptunet")
class PromptUNet(PromptSegmentationModel):
    """EfficientNet-Lite U-Net with FiLM prompt conditioning and a predicted-IoU head.

    Args:
        config: Architecture settings; defaults to :class:`PromptUNetConfig` ``()``.
        load_pretrained: Load the ImageNet encoder weights when ``config.pretrained``;
            :meth:`from_pretrained` passes False since the checkpoint overwrites them.

    Example:
        >>> model = PromptUNet(PromptUNetConfig(pretrained=False, text_encoder="hashing")).eval()
        >>> out = model.segment(torch.rand(2, 3, 64, 64), ["crack", "taping area"])
        >>> tuple(out.mask_logits.shape), tuple(out.confidence_logits.shape)
        ((2, 1, 64, 64), (2,))
    """

    config_class = PromptUNetConfig
    config: PromptUNetConfig
    pretrained_prefixes = ("encoder.",)

    def __init__(self, config: PromptUNetConfig | None = None, *, load_pretrained: bool = True):
        config = config if config is not None else PromptUNetConfig()
        encoder = EfficientNetLiteEncoder(config.encoder, pretrained=config.pretrained and load_pretrained)
        super().__init__(config, encoder.pixel_mean, encoder.pixel_std)
        self.encoder = encoder

        skips = list(encoder.out_channels[:-1][::-1])  # strides 16, 8, 4, 2
        if not config.stride2_skip:
            skips[3] = 0
        skips.append(0)  # the full-resolution stage has no encoder features
        blocks, in_channels = [], encoder.out_channels[-1]
        for stage, out_channels in enumerate(config.decoder_channels):
            blocks.append(DecoderBlock(in_channels, skips[stage], out_channels))
            in_channels = out_channels
        self.decoder = nn.ModuleList(blocks)
        self.output_upscale = 2 ** (5 - len(config.decoder_channels))
        self.mask_head = nn.Conv2d(in_channels, 1, 1)

        film_channels: tuple[int, ...] = (encoder.out_channels[-1],) if config.film_bottleneck else ()
        film_channels += tuple(config.decoder_channels) if config.film else ()
        self.film = PromptFiLM(self.embed_dim, film_channels, config.film_hidden) if film_channels else None
        self.confidence_head = ConfidenceHead(
            encoder.out_channels[-1], in_channels, self.embed_dim, config.confidence_hidden
        )

    def encode_normalized(self, pixels: Tensor) -> ImageFeatures:
        """Everything before FiLM, which alone sees the prompt: the deepest encoder map (stride
        32), then each decoder stage's share of its skip features (:meth:`DecoderBlock.project_skip`),
        deepest first."""
        *skips, bottleneck = self.encoder(pixels)
        skips = skips[::-1]  # strides 16, 8, 4, 2
        return (bottleneck, *(block.project_skip(skips[stage]) for stage, block in enumerate(self.decoder)
                              if block.has_skip))

    def decode_features(self, features: ImageFeatures, prompt_embeddings: Tensor) -> ModelOutput:
        film = self.film(prompt_embeddings) if self.film is not None else []
        bottleneck, projected_skips = features[0], iter(features[1:])
        if self.config.film_bottleneck:
            bottleneck = film_modulate(bottleneck, film.pop(0))

        x = bottleneck
        for stage, block in enumerate(self.decoder):
            x = block(
                x,
                next(projected_skips) if block.has_skip else None,
                film[stage] if self.config.film else None,
            )
        mask_logits = self.mask_head(x)
        confidence_logits = self.confidence_head(bottleneck, x, mask_logits, prompt_embeddings)
        if self.output_upscale > 1:
            mask_logits = F.interpolate(
                mask_logits, scale_factor=float(self.output_upscale), mode="bilinear", align_corners=False
            )
        return ModelOutput(mask_logits, confidence_logits)
