"""clipseg: a tiny random CLIPSeg loaded through --weights, fine-tuned by the CLI, evaluated, predicted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from testdata import two_step_fine_tune

from drywallqa.data import AnnotatedDataset
from drywallqa.evaluation import evaluate
from drywallqa.inference import model_predictor
from drywallqa.models import (
    ClipSeg,
    PromptSegmentationModel,
    build_from_spec,
    build_model,
)
from drywallqa.models.transformers_base import soft_mask_iou

PROMPTS = ["segment crack", "segment taping area", "find cracks", "segment drywall seam"]
CHECKPOINT = "clipseg"
SAMPLE = (16, 3)


@pytest.fixture(scope="module")
def trained_dir(weights, sample, tmp_path_factory):
    """`drywallqa train --model clipseg --set model.args.weights=DIR`, 2 steps at batch size 1."""
    return two_step_fine_tune("clipseg", weights, sample.root, tmp_path_factory.mktemp("run") / "clipseg", 1)


def test_cli_fine_tune_writes_a_self_contained_checkpoint(trained_dir, weights):
    meta = json.loads((trained_dir / "config.json").read_text())
    assert meta["model"] == "clipseg" and meta["config"]["weights"] == weights
    assert meta["config"]["architecture"]["model_type"] == "clipseg"
    model = PromptSegmentationModel.from_pretrained(trained_dir)
    assert isinstance(model, ClipSeg) and model.default_image_size == 64
    # Only the decoder and the confidence head were trained; the CLIP towers stayed as loaded.
    pretrained = build_model("clipseg", weights=weights)
    for name, value in pretrained.clipseg.clip.state_dict().items():
        torch.testing.assert_close(model.clipseg.clip.state_dict()[name], value, rtol=0, atol=0)
    changed = [
        n
        for n, v in pretrained.clipseg.decoder.state_dict().items()
        if not torch.equal(v, model.clipseg.decoder.state_dict()[n])
    ]
    assert changed, "two optimiser steps should move the decoder"


def test_frozen_and_trained_parts(weights):
    model = build_model("clipseg", weights=weights)
    assert not any(p.requires_grad for p in model.clipseg.clip.parameters())
    assert all(p.requires_grad for p in model.clipseg.decoder.parameters())
    assert all(p.requires_grad for p in model.confidence_head.parameters())
    model.train()
    assert not model.clipseg.clip.training and model.clipseg.decoder.training


def test_batch_of_one_and_mixed_prompts_match_one_by_one(weights):
    torch.manual_seed(0)
    model = build_model("clipseg", weights=weights).eval()
    images = torch.rand(len(PROMPTS), 3, 64, 64)
    with torch.no_grad():
        batched = model.segment(images, PROMPTS)
        singles = [model.segment(images[i : i + 1], [prompt]) for i, prompt in enumerate(PROMPTS)]
    assert batched.mask_logits.shape == (4, 1, 64, 64) and singles[0].mask_logits.shape == (1, 1, 64, 64)
    for i, single in enumerate(singles):
        torch.testing.assert_close(batched.mask_logits[i : i + 1], single.mask_logits, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(batched.confidence_logits[i : i + 1], single.confidence_logits, rtol=1e-4, atol=1e-4)
    # Each prompt went through the text tower once: four different conditional embeddings.
    embeddings = model.embed_prompts(PROMPTS)
    assert model.text_encoder.cache_size == 4 and torch.linalg.matrix_rank(embeddings) == 4


def test_untrained_confidence_is_the_soft_iou_of_the_mask(weights):
    model = build_model("clipseg", weights=weights).eval()
    with torch.no_grad():
        out = model.segment(torch.rand(2, 3, 64, 64), PROMPTS[:2])
    torch.testing.assert_close(
        torch.sigmoid(out.confidence_logits), soft_mask_iou(out.mask_logits), rtol=1e-3, atol=1e-3
    )


def test_second_pass_hits_the_embedding_cache(weights, tmp_path):
    model = build_model("clipseg", weights=weights, embedding_cache=str(tmp_path / "cache")).eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        first = model.segment(images, PROMPTS[:3])
        assert (model.embedding_cache.hits, model.embedding_cache.misses) == (0, 3)
        second = model.segment(images, PROMPTS[:3])
    assert (model.embedding_cache.hits, model.embedding_cache.misses) == (3, 3)
    torch.testing.assert_close(second.mask_logits, first.mask_logits, rtol=0, atol=0)
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 3


def test_evaluate_and_predict_the_fine_tuned_model(trained_dir, sample):
    model = build_from_spec(str(trained_dir))
    predictor = model_predictor(model, device="cpu")
    datasets = [AnnotatedDataset.load(path) for path in sample.dataset_roots]
    report = evaluate(predictor, datasets, split="valid", max_images=2, batch_size=2, progress=False)
    assert report.metadata.predictor == "clipseg" and set(report.classes) == {"crack", "taping_area"}
    image = datasets[0].split("valid")[0].load_image()
    result = predictor.predict(image, "segment crack")
    assert result.mask.shape == image.shape[:2] and 0.0 <= result.confidence <= 1.0


def test_zero_shot_spec_loads_weights_from_a_folder(weights):
    for spec in (f"clipseg:{weights}", weights):  # NAME:DIR, or the bare transformers folder
        model = build_from_spec(spec)
        assert isinstance(model, ClipSeg) and not model.training and model.config.weights == weights
    result = model_predictor(model, device="cpu").predict(np.zeros((40, 50, 3), np.uint8), "segment crack")
    assert result.mask.shape == (40, 50)
