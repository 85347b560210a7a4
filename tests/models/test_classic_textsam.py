"""textsam: a tiny random SAM loaded through --weights, fine-tuned by the CLI, evaluated (text only and
with ground-truth boxes, which the report must name), predicted; the CLIP text variant."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from testdata import two_step_fine_tune
from tiny_checkpoints import save_tiny_checkpoint

from drywallqa.data import AnnotatedDataset
from drywallqa.errors import ConfigError
from drywallqa.evaluation import evaluate
from drywallqa.inference import model_predictor
from drywallqa.models import (
    PromptSegmentationModel,
    TextSam,
    build_from_spec,
    build_model,
)

CHECKPOINT = "sam"
SAMPLE = (16, 4)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="module")
def trained_dir(weights, sample, cache_dir, tmp_path_factory):
    """`drywallqa train --model textsam --set model.args.weights=DIR`, 2 steps, embedding cache on."""
    return two_step_fine_tune("textsam", weights, sample.root, tmp_path_factory.mktemp("run") / "textsam", 2,
                              "model.args.text_encoder=hashing", f"model.args.embedding_cache={cache_dir}")


def test_cli_fine_tune_trains_decoder_and_projection_only(trained_dir, weights, cache_dir):
    meta = json.loads((trained_dir / "config.json").read_text())
    assert meta["model"] == "textsam" and meta["config"]["weights"] == weights
    model = PromptSegmentationModel.from_pretrained(trained_dir)
    pretrained = build_model("textsam", weights=weights, text_encoder="hashing")
    for part in ("vision_encoder", "prompt_encoder"):
        for name, value in getattr(pretrained.sam, part).state_dict().items():
            assert torch.equal(getattr(model.sam, part).state_dict()[name], value), f"{part}.{name} moved"
    moved = [
        n
        for n, v in pretrained.sam.mask_decoder.state_dict().items()
        if not torch.equal(v, model.sam.mask_decoder.state_dict()[n])
    ]
    assert moved, "two optimiser steps should move the mask decoder"
    # The frozen encoder's outputs went to the cache during training.
    assert list(cache_dir.rglob("*.safetensors"))


def test_frozen_parts_and_confidence_is_sams_iou(weights):
    model = build_model("textsam", weights=weights, text_encoder="hashing")
    assert not any(p.requires_grad for p in model.sam.vision_encoder.parameters())
    assert not any(p.requires_grad for p in model.sam.prompt_encoder.parameters())
    assert all(p.requires_grad for p in model.sam.mask_decoder.parameters())
    assert all(p.requires_grad for p in model.text_projection.parameters())
    assert model.encoder is model.sam.vision_encoder
    with torch.no_grad():
        out = model.eval().segment(torch.rand(1, 3, 64, 64), ["segment crack"])
    assert out.mask_logits.shape == (1, 1, 64, 64) and out.confidence_logits.shape == (1,)


def test_second_pass_hits_the_embedding_cache(weights, tmp_path):
    model = build_model("textsam", weights=weights, text_encoder="hashing", embedding_cache=str(tmp_path)).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        first = model.segment(images, ["segment crack", "segment taping area"])
        second = model.segment(images, ["segment crack", "segment taping area"])
    assert (model.embedding_cache.hits, model.embedding_cache.misses) == (2, 2)
    torch.testing.assert_close(second.mask_logits, first.mask_logits, rtol=0, atol=0)


def test_clip_text_encoder_from_text_weights(weights, tmp_path):
    clip = str(save_tiny_checkpoint("clip", tmp_path / "clip"))
    model = build_model("textsam", weights=weights, text_weights=clip, dense_prompt=True)
    assert model.config.text_encoder == "clip" and model.embed_dim == 24  # the tiny CLIP's projection size
    embeddings = model.embed_prompts(["segment crack", "segment taping area"])
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))
    directory = model.save_pretrained(tmp_path / "ckpt")
    loaded = PromptSegmentationModel.from_pretrained(directory)
    torch.testing.assert_close(loaded.embed_prompts(["segment crack"]), embeddings[:1])
    assert not any("text_model" in name for name in loaded.state_dict())  # reloaded from text_weights
    with pytest.raises(ConfigError, match="text_weights is for the CLIP text encoder"):
        build_model("textsam", weights=weights, text_weights=clip, text_encoder="hashing")


def test_evaluate_and_predict_text_only(trained_dir, sample):
    predictor = model_predictor(build_from_spec(trained_dir), device="cpu")
    datasets = [AnnotatedDataset.load(path) for path in sample.dataset_roots]
    report = evaluate(predictor, datasets, split="valid", max_images=2, batch_size=2, progress=False)
    assert report.metadata.predictor == "textsam" and predictor.metadata["box_prompts"] == "none"
    image = datasets[1].split("valid")[0].load_image()
    result = predictor.predict(image, "segment taping area")
    assert result.mask.shape == image.shape[:2]


def test_ground_truth_boxes_are_named_in_the_report(trained_dir, sample):
    model = build_from_spec(trained_dir, {"boxes": f"annotations:{sample.cracks}"})
    assert isinstance(model, TextSam) and model.box_source.uses_ground_truth
    assert model.display_name == f"textsam+boxes:annotations:{sample.cracks}"
    predictor = model_predictor(model, device="cpu")
    assert predictor.metadata["box_prompts_from_ground_truth"] is True
    assert "upper bound" in predictor.metadata["box_prompts"]
    cracks = AnnotatedDataset.load(sample.cracks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every evaluated image must be found in the box source
        report = evaluate(predictor, [cracks], split="valid", max_images=2, batch_size=2, progress=False)
    assert report.metadata.predictor.startswith("textsam+boxes:annotations:")
    # With boxes the crack prompt's mask differs from the text-only one on an annotated image.
    text_only = model_predictor(build_from_spec(trained_dir), device="cpu")
    sample_with_crack = next(s for s in cracks.split("valid") if "crack" in s.classes)
    image = sample_with_crack.load_image()
    with_boxes = predictor.predict(image, "segment crack", return_probabilities=True).probabilities
    without = text_only.predict(image, "segment crack", return_probabilities=True).probabilities
    assert not (with_boxes == without).all()


def test_textsam_needs_fine_tuning_before_zero_shot_use(weights):
    with pytest.raises(ConfigError, match="must be trained before it can predict"):
        build_from_spec(f"textsam:{weights}")
    with pytest.raises(ConfigError, match="SAM checkpoint, which needs box prompts"):
        build_from_spec(weights)
