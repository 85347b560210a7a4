"""sam3: a tiny random SAM 3 loaded through --weights, evaluated and predicted zero-shot; training refused."""

from __future__ import annotations

import torch

from drywallqa.cli import main
from drywallqa.data import AnnotatedDataset
from drywallqa.evaluation import evaluate
from drywallqa.inference import model_predictor
from drywallqa.models import (
    Sam3Segmenter,
    build_from_spec,
    build_model,
)
from drywallqa.models.transformers_base import EMPTY_LOGIT, resize_pixels, upsample_logits

CHECKPOINT = "sam3"
SAMPLE = (12, 5)


def test_prompt_embedding_carries_projected_tokens_and_mask(weights):
    model = build_model("sam3", weights=weights)
    encoder = model.text_encoder
    embeddings = model.embed_prompts(["segment crack", "a"])
    assert embeddings.shape == (2, encoder.length * (encoder.hidden + 1))
    mask = embeddings[:, encoder.length * encoder.hidden :]
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask[0].sum() > mask[1].sum()  # the longer prompt
    assert not any("text_encoder" in name for name in model.state_dict())


def test_instances_are_merged_by_their_maximum_above_the_score_threshold(weights):
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    torch.manual_seed(0)
    images, prompts = torch.rand(2, 3, 64, 64), ["segment crack", "segment taping area"]
    keep_all = build_model("sam3", weights=weights, score_threshold=0.0).eval()
    keep_none = build_model("sam3", weights=weights, score_threshold=1.0).eval()
    length, hidden = keep_all.text_encoder.length, keep_all.text_encoder.hidden
    embeddings = keep_all.embed_prompts(prompts)
    with torch.no_grad():
        everything, nothing = keep_all.segment(images, prompts), keep_none.segment(images, prompts)
        raw = keep_all.sam3(  # SAM 3 itself, on the same inputs
            pixel_values=resize_pixels((images - keep_all.pixel_mean) / keep_all.pixel_std, keep_all.native_image_size),
            text_embeds=BaseModelOutputWithPooling(
                pooler_output=embeddings[:, : length * hidden].reshape(2, length, hidden)
            ),
            attention_mask=embeddings[:, length * hidden :] > 0.5,
        )
    expected = upsample_logits(raw.pred_masks.amax(dim=1, keepdim=True), (64, 64))
    torch.testing.assert_close(everything.mask_logits, expected, rtol=1e-4, atol=1e-4)
    assert (nothing.mask_logits == EMPTY_LOGIT).all()
    # No instance kept: the confidence is the belief that nothing is there, 1 - presence.
    presence = torch.sigmoid(raw.presence_logits.reshape(-1))
    torch.testing.assert_close(torch.sigmoid(nothing.confidence_logits), 1 - presence, rtol=1e-3, atol=1e-3)


def test_evaluate_and_predict_zero_shot(weights, sample):
    model = build_from_spec(f"sam3:{weights}")
    assert isinstance(model, Sam3Segmenter) and not model.training
    predictor = model_predictor(model, device="cpu")
    datasets = [AnnotatedDataset.load(path) for path in sample.dataset_roots]
    report = evaluate(predictor, datasets, split="valid", max_images=2, batch_size=2, progress=False)
    assert report.metadata.predictor == "sam3" and report.classes
    image = datasets[0].split("valid")[0].load_image()
    result = predictor.predict(image, "segment crack")
    assert result.mask.shape == image.shape[:2] and 0.0 <= result.confidence <= 1.0
    assert build_from_spec(weights).name == "sam3"  # the bare transformers folder works too


def test_training_is_refused_with_one_clear_line(weights, sample, tmp_path, capsys):
    args = [
        "train",
        "--data",
        str(sample.root),
        "--out",
        str(tmp_path / "run"),
        "--model",
        "sam3",
        "--epochs",
        "1",
        "--image-size",
        "64",
        "--batch-size",
        "2",
        "--no-progress",
        "--set",
        f"model.args.weights={weights}",
        "--set",
        "trainer.max_steps=2",
        "--set",
        "trainer.num_workers=0",
    ]
    assert main(args) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after Lightning's INFO lines
    assert last_line.startswith("error: sam3 is zero-shot") and "evaluation and prediction only" in last_line
