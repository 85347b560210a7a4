"""The interface contract, checked for every registered model (the BaseModelTester pattern).

Each registered name needs an entry in :data:`OFFLINE_OVERRIDES` that builds a small model with
no downloads and no pretrained weights; the first test fails when one is missing.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from tiny_checkpoints import save_tiny_checkpoint

from drywallqa.errors import ConfigError
from drywallqa.models import ModelOutput, PromptSegmentationModel, available_models, build_model

OFFLINE_OVERRIDES: dict[str, dict] = {
    "promptunet": {"pretrained": False, "text_encoder": "hashing"},
    # Tiny random transformers checkpoints written to the temp folder once (no network).
    "clipseg": {"weights": str(save_tiny_checkpoint("clipseg"))},
    "textsam": {"weights": str(save_tiny_checkpoint("sam")), "text_encoder": "hashing"},
    "sam3": {"weights": str(save_tiny_checkpoint("sam3"))},
    "two-stage": {"weights": str(save_tiny_checkpoint("sam")), "boxes": "full-image"},
}
SIZE = 64
PROMPTS = ["segment crack", "segment taping area"]


def test_every_registered_model_has_offline_overrides() -> None:
    assert set(available_models()) <= set(OFFLINE_OVERRIDES), "add the new model to OFFLINE_OVERRIDES"


@pytest.fixture(params=available_models())
def model(request: pytest.FixtureRequest) -> PromptSegmentationModel:
    torch.manual_seed(0)
    return build_model(request.param, **OFFLINE_OVERRIDES[request.param]).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


class TestModelContract:
    def test_metadata(self, model: PromptSegmentationModel) -> None:
        assert model.name in available_models()
        assert isinstance(model.config, type(model).config_class)
        assert dataclasses.is_dataclass(model.config)
        assert model.default_image_size % model.size_divisor == 0

    def test_forward_shapes_and_dtypes(self, model: PromptSegmentationModel, images: torch.Tensor) -> None:
        with torch.no_grad():
            out = model(images, model.embed_prompts(PROMPTS))
        assert isinstance(out, ModelOutput)
        assert out.mask_logits.shape == (2, 1, SIZE, SIZE)
        assert out.confidence_logits.shape == (2,)
        assert out.mask_logits.dtype == out.confidence_logits.dtype == torch.float32
        assert torch.isfinite(out.mask_logits).all() and torch.isfinite(out.confidence_logits).all()

    def test_segment_equals_embed_then_forward(self, model: PromptSegmentationModel, images: torch.Tensor) -> None:
        with torch.no_grad():
            expected = model(images, model.embed_prompts(PROMPTS))
            actual = model.segment(images, PROMPTS)
            broadcast = model.segment(images, PROMPTS[:1])
            repeated = model.segment(images, PROMPTS[:1] * 2)
        torch.testing.assert_close(actual.mask_logits, expected.mask_logits)
        torch.testing.assert_close(broadcast.mask_logits, repeated.mask_logits)

    def test_wrong_prompt_count_raises(self, model: PromptSegmentationModel, images: torch.Tensor) -> None:
        with pytest.raises(ValueError, match="expected 2 prompts"):
            model.segment(images, PROMPTS * 2)

    def test_embed_prompts_is_cached_frozen_and_not_saved(self, model: PromptSegmentationModel) -> None:
        embeddings = model.embed_prompts(PROMPTS)
        assert embeddings.shape == (2, model.embed_dim)
        assert not embeddings.requires_grad
        assert model.text_encoder.cache_size == 2
        names = set(model.state_dict()) | {name for name, _ in model.named_parameters()}
        assert not any("text_encoder" in name or "cache" in name for name in names)

    @pytest.mark.parametrize("height, width, padded", [(70, 64, "96x64"), (64, 100, "64x128")])
    def test_size_not_multiple_of_divisor_names_padded_size(
        self, model: PromptSegmentationModel, height: int, width: int, padded: str
    ) -> None:
        with pytest.raises(ValueError, match=f"pad the images to {padded}"):
            model.segment(torch.rand(1, 3, height, width), PROMPTS[:1])

    @pytest.mark.parametrize(
        "images, embeddings, message",
        [
            (torch.rand(1, 1, SIZE, SIZE), torch.rand(1, 384), r"\(B, 3, H, W\)"),
            (torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8), torch.rand(1, 384), "divide uint8 images by 255"),
            (torch.rand(2, 3, SIZE, SIZE), torch.rand(1, 384), r"prompt_embeddings must have shape \(B, D\)"),
        ],
    )
    def test_bad_inputs_raise_with_expected_shape(
        self, model: PromptSegmentationModel, images: torch.Tensor, embeddings: torch.Tensor, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            model(images, embeddings)

    def test_every_parameter_gets_a_gradient(self, model: PromptSegmentationModel, images: torch.Tensor) -> None:
        model.train()
        out = model(images, model.embed_prompts(PROMPTS))
        (out.mask_logits.mean() + out.confidence_logits.mean()).backward()
        unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"parameters outside the graph: {unused[:5]}"

    def test_forward_exports_with_dynamic_batch(self, model: PromptSegmentationModel, images: torch.Tensor) -> None:
        # torch.export is what the ONNX exporter builds on: no Python-side data-dependent branches.
        batch = torch.export.Dim("batch")
        exported = torch.export.export(
            model, (images, model.embed_prompts(PROMPTS)), dynamic_shapes=({0: batch}, {0: batch})
        ).module()
        three_images, three_prompts = torch.rand(3, 3, SIZE, SIZE), model.embed_prompts(PROMPTS + PROMPTS[:1])
        with torch.no_grad():
            actual, expected = exported(three_images, three_prompts), model(three_images, three_prompts)
        torch.testing.assert_close(actual[0], expected.mask_logits)
        torch.testing.assert_close(actual[1], expected.confidence_logits)

    @pytest.mark.parametrize("fp16", [False, True])
    def test_save_and_load_round_trip(
        self, model: PromptSegmentationModel, images: torch.Tensor, tmp_path, fp16: bool
    ) -> None:
        with torch.no_grad():
            for parameter in model.parameters():  # move off the zero-initialised defaults
                parameter.add_(0.01 * torch.randn_like(parameter))
        directory = model.save_pretrained(tmp_path / "ckpt", fp16=fp16)
        assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
        meta = json.loads((directory / "config.json").read_text())
        assert meta["model"] == model.name and meta["dtype"] == ("float16" if fp16 else "float32")

        loaded = PromptSegmentationModel.from_pretrained(directory / "model.safetensors")
        assert type(loaded) is type(model) and loaded.config == model.config
        embeddings = model.embed_prompts(PROMPTS)
        with torch.no_grad():
            expected, actual = model(images, embeddings), loaded(images, embeddings)
        tolerance = {"rtol": 2e-2, "atol": 2e-2} if fp16 else {"rtol": 0, "atol": 0}
        torch.testing.assert_close(actual.mask_logits, expected.mask_logits, **tolerance)
        torch.testing.assert_close(actual.confidence_logits, expected.confidence_logits, **tolerance)
        assert next(loaded.parameters()).dtype == torch.float32


def test_from_pretrained_missing_folder_raises_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no config.json; expected a folder written by save_pretrained"):
        PromptSegmentationModel.from_pretrained(tmp_path / "nowhere")


def test_from_pretrained_rejects_unknown_model_name(tmp_path) -> None:
    model = build_model("promptunet", **OFFLINE_OVERRIDES["promptunet"])
    directory = model.save_pretrained(tmp_path)
    meta = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**meta, "model": "nonesuch"}))
    with pytest.raises(ConfigError, match="unknown model 'nonesuch'"):
        PromptSegmentationModel.from_pretrained(directory)
