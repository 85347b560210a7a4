"""BatchNorm folded into the convolutions for inference: the same outputs, fewer modules."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from drywallqa.inference import ModelPredictor
from drywallqa.inference.folding import fold_batchnorm
from drywallqa.models import build_model


def trained_looking_model():
    """A PromptUNet whose BatchNorm statistics and affine parameters are not the identity."""
    torch.manual_seed(0)
    model = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_every_batchnorm_of_promptunet_folds_with_the_same_outputs():
    model = trained_looking_model()
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded, count = fold_batchnorm(model, (torch.rand(1, 3, 64, 64), torch.randn(1, model.embed_dim)))
    assert count == norms and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is left as it was
    images, embeddings = torch.rand(2, 3, 128, 128), torch.randn(2, model.embed_dim)
    with torch.no_grad():
        a, b = model(images, embeddings), folded(images, embeddings)
    assert torch.allclose(a.mask_logits, b.mask_logits, atol=1e-4)
    assert torch.allclose(a.confidence_logits, b.confidence_logits, atol=1e-4)


def test_the_folded_runtime_gives_the_same_masks():
    model = trained_looking_model()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    plain = ModelPredictor(model, device="cpu", image_size=64, fold_batchnorm=False)
    folded = ModelPredictor(model, device="cpu", image_size=64, fold_batchnorm=True)
    assert plain.folded_batchnorms == 0 and folded.folded_batchnorms > 0
    a, b = plain.forward_batch(images, ["segment crack"] * 3), folded.forward_batch(images, ["segment crack"] * 3)
    assert np.allclose(a[0], b[0], atol=1e-4) and np.allclose(a[1], b[1], atol=1e-4)
    assert np.array_equal(a[0] > 0, b[0] > 0)


class SharedOutput(nn.Module):
    """A convolution whose output feeds a BatchNorm and, unnormalised, the output too."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.norm.running_mean.fill_(0.5)

    def forward(self, x):
        y = self.conv(x)
        return self.norm(y) + y


def test_a_convolution_whose_output_is_also_used_elsewhere_is_left_unfolded():
    model = SharedOutput()
    folded, count = fold_batchnorm(model, (torch.rand(1, 3, 8, 8),))
    assert count == 0 and folded is model
