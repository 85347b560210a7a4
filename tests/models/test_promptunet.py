"""PromptUNet specifics: variants, decoder options, prompt conditioning, training, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drywallqa.errors import ConfigError
from drywallqa.models import PromptUNet, PromptUNetConfig
from drywallqa.models.encoders import efficientnet_lite

PROMPTS = ["segment crack", "segment taping area"]


def tiny(**overrides) -> PromptUNet:
    torch.manual_seed(0)
    return PromptUNet(PromptUNetConfig(pretrained=False, text_encoder="hashing", **overrides))


def run(model: PromptUNet, size: tuple[int, int] = (64, 64), batch: int = 2):
    images = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model.eval().segment(images, PROMPTS[:batch])


@pytest.mark.parametrize("encoder", ["lite1", "lite2"])
def test_larger_encoders_forward(encoder: str) -> None:
    out = run(tiny(encoder=encoder), size=(64, 96))
    assert out.mask_logits.shape == (2, 1, 64, 96) and out.confidence_logits.shape == (2,)


@pytest.mark.parametrize(
    "overrides",
    [
        {"decoder_channels": (96, 64, 48, 32, 16)},  # ends at full resolution
        {"decoder_channels": (64, 32)},  # ends at stride 4
        {"stride2_skip": False},
        {"film": False, "film_bottleneck": False},
        {"film": True, "film_bottleneck": False},
    ],
)
def test_decoder_options_keep_output_at_input_size(overrides: dict) -> None:
    assert run(tiny(**overrides), batch=1).mask_logits.shape == (1, 1, 64, 64)


def test_parameter_count_of_lite0_stays_small() -> None:
    # About 3.5M, of which 2.96M are the encoder; a jump means a heavier decoder slipped in.
    assert 3_000_000 < tiny().num_parameters() < 4_000_000


def test_film_starts_as_identity_and_then_separates_prompts() -> None:
    model = tiny().eval()
    images = torch.rand(1, 3, 64, 64).expand(2, -1, -1, -1)
    with torch.no_grad():
        at_init = model.segment(images, PROMPTS)
        for head in model.film.heads:
            head.weight.normal_(std=0.05)
        conditioned = model.segment(images, PROMPTS)
    torch.testing.assert_close(at_init.mask_logits[0], at_init.mask_logits[1])
    assert (conditioned.mask_logits[0] - conditioned.mask_logits[1]).abs().max() > 1e-3
    # The confidence head sees the prompt directly, even before FiLM has learned anything.
    assert at_init.confidence_logits[0] != at_init.confidence_logits[1]


def test_two_optimisation_steps_lower_the_loss() -> None:
    model = tiny().train()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    targets = torch.zeros(2, 1, 64, 64)
    targets[0, :, 10:30, 5:60] = 1
    targets[1, :, 40:50, :] = 1
    embeddings = model.embed_prompts(PROMPTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        out = model(images, embeddings)
        return F.binary_cross_entropy_with_logits(out.mask_logits, targets)

    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    with torch.no_grad():
        losses.append(loss().item())
    assert losses[2] < losses[0], losses


def test_from_pretrained_needs_no_encoder_weights(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint of an ImageNet-initialised model carries every weight itself.
    config = PromptUNetConfig(pretrained=True, text_encoder="hashing")
    PromptUNet(config, load_pretrained=False).save_pretrained(tmp_path)

    def no_weights(variant: str, include_classifier: bool = False):
        raise AssertionError("from_pretrained read the ImageNet weights")

    monkeypatch.setattr(efficientnet_lite, "load_lite_state_dict", no_weights)
    loaded = PromptUNet.from_pretrained(tmp_path)
    assert loaded.config == config and not loaded.training


def test_checkpoint_with_other_architecture_config_is_rejected(tmp_path) -> None:
    tiny(encoder="lite0").save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(config_path.read_text().replace('"lite0"', '"lite2"'))
    with pytest.raises(ConfigError, match="weights do not match the config"):
        PromptUNet.from_pretrained(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "not safetensors"])
def test_damaged_weights_file_is_a_one_line_error(tmp_path, damage) -> None:
    tiny().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "not safetensors": b"PK\x03\x04zip"}[damage])
    with pytest.raises(ConfigError, match=r"model\.safetensors: not a readable safetensors file \(.+\); save or copy"):
        PromptUNet.from_pretrained(tmp_path)


def test_unknown_saved_config_field_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown PromptUNetConfig field"):
        PromptUNetConfig.from_dict({"encoder": "lite0", "depth": 5})


def concat_reference(model: PromptUNet, images: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """The mask logits of the decoder written as before the encoder/decoder split: each stage
    upsamples, concatenates the skip and runs the whole fuse convolution on it."""
    from drywallqa.models.promptunet import film_modulate

    features = model.encoder((images - model.pixel_mean) / model.pixel_std)
    film = model.film(embeddings) if model.film is not None else []
    x = film_modulate(features[-1], film.pop(0)) if model.config.film_bottleneck else features[-1]
    skips = features[:-1][::-1]
    for stage, block in enumerate(model.decoder):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = block.fuse(torch.cat([x, skips[stage]], dim=1) if block.has_skip else x)
        x = x + block.refine(x)
        x = F.relu(film_modulate(x, film[stage]) if model.config.film else x)
    logits = model.mask_head(x)
    if model.output_upscale > 1:
        logits = F.interpolate(logits, scale_factor=float(model.output_upscale), mode="bilinear", align_corners=False)
    return logits


def conditioned(model: PromptUNet) -> PromptUNet:
    """The model with FiLM heads that actually depend on the prompt (they start at zero)."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for head in model.film.heads if model.film is not None else []:
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.05)
    return model.eval()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"decoder_channels": (96, 64, 48, 32, 16)}, {"decoder_channels": (64, 32)}, {"stride2_skip": False},
     {"film": False, "film_bottleneck": False}],
)
def test_the_split_fuse_convolution_equals_the_concatenated_one(overrides: dict) -> None:
    model = conditioned(tiny(**overrides))
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    embeddings = model.embed_prompts(PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(model(images, embeddings).mask_logits, concat_reference(model, images, embeddings),
                                   rtol=0, atol=1e-5)


def test_decode_of_encode_is_forward_and_each_prompt_reuses_its_image() -> None:
    model = conditioned(tiny())
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    embeddings = model.embed_prompts(PROMPTS)
    with torch.no_grad():
        whole = model(images, embeddings)
        split = model.decode(model.encode(images), embeddings)
        # Three pairs from two encodings: image 0 with both prompts, image 1 with the first.
        pairs = model.decode(model.encode(images), embeddings[[0, 1, 0]], torch.tensor([0, 0, 1]))
        alone = model(images[[0, 0, 1]], embeddings[[0, 1, 0]])
    torch.testing.assert_close(split.mask_logits, whole.mask_logits, rtol=0, atol=0)
    torch.testing.assert_close(pairs.mask_logits, alone.mask_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(pairs.confidence_logits, alone.confidence_logits, rtol=0, atol=1e-6)
    assert (pairs.mask_logits[0] - pairs.mask_logits[1]).abs().max() > 1e-4  # the prompts do differ


def test_decode_checks_the_prompts_against_the_features() -> None:
    model = tiny().eval()
    with torch.no_grad():
        features = model.encode(torch.rand(2, 3, 64, 64))
        with pytest.raises(ValueError, match=r"prompt_embeddings must have shape \(M, D\) = \(2, 384\)"):
            model.decode(features, model.embed_prompts(PROMPTS[:1]))
