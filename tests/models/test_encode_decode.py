"""The encode/decode split of the model interface: a model without one keeps working through the default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drywallqa.models.base import ModelOutput, PromptModelConfig, PromptSegmentationModel

PROMPTS = ["segment crack", "segment taping area"]


class WholeModel(PromptSegmentationModel):
    """A model with only ``forward_normalized``: the logits are the pixels' mean times the prompt's first value."""

    def __init__(self):
        super().__init__(PromptModelConfig(text_encoder="hashing", image_size=64), (0.5,) * 3, (0.25,) * 3)
        self.calls = 0

    def forward_normalized(self, pixels, prompt_embeddings):
        self.calls += 1
        logits = pixels.mean(dim=1, keepdim=True) * (1 + 100 * prompt_embeddings[:, :1, None, None])
        return ModelOutput(logits, prompt_embeddings[:, 0])


def test_the_default_split_encodes_the_normalised_pixels_and_decodes_with_forward() -> None:
    model = WholeModel().eval()
    images = torch.rand(2, 3, 32, 32)
    embeddings = model.embed_prompts(PROMPTS)
    features = model.encode(images)
    torch.testing.assert_close(features[0], (images - 0.5) / 0.25)
    pairs = model.decode(features, embeddings[[1, 0]], torch.tensor([0, 0]))
    torch.testing.assert_close(pairs.mask_logits, model(images[[0, 0]], embeddings[[1, 0]]).mask_logits)


def test_a_model_without_forward_normalized_or_decode_says_so() -> None:
    class Empty(PromptSegmentationModel):
        pass

    model = Empty(PromptModelConfig(text_encoder="hashing", image_size=64), (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(NotImplementedError, match="implements neither forward_normalized nor decode_features"):
        model(torch.rand(1, 3, 32, 32), model.embed_prompts(PROMPTS[:1]))


def test_the_pytorch_runtime_runs_a_model_without_a_split_with_several_prompts() -> None:
    from drywallqa.inference import ModelPredictor

    predictor = ModelPredictor(WholeModel(), device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    both = predictor.predict(image, PROMPTS, return_probabilities=True)
    for result, prompt in zip(both, PROMPTS):
        alone = predictor.predict(image, prompt, return_probabilities=True)
        np.testing.assert_allclose(result.probabilities, alone.probabilities, atol=1e-6)
        assert result.prompt == prompt
