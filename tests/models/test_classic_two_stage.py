"""two-stage: box sources (COCO/YOLO detector files, annotations, a zero-shot detector, a drywallqa model,
the full image) refined by a tiny random SAM loaded through --weights; evaluated and predicted."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from tiny_checkpoints import save_tiny_checkpoint

from drywallqa.data import AnnotatedDataset, PromptConfig
from drywallqa.errors import ConfigError, DrywallQAError
from drywallqa.evaluation import evaluate
from drywallqa.inference import model_predictor
from drywallqa.models import TwoStage, build_from_spec, build_model
from drywallqa.models.box_detectors import DetectorBoxes, ModelMaskBoxes
from drywallqa.models.box_sources import BoxSourceConfig, build_box_source
from drywallqa.models.sam_parts import merge_prompt_masks
from drywallqa.models.transformers_base import EMPTY_LOGIT

ANNOTATION_FILE = "_annotations.coco.json"


CHECKPOINT = "sam"
SAMPLE = (12, 6)


@pytest.fixture(scope="module")
def cracks_valid(sample) -> AnnotatedDataset:
    return AnnotatedDataset.load(sample.cracks).split("valid")


@pytest.fixture(scope="module")
def coco_results(sample, tmp_path_factory):
    """A detector's COCO results for cracks/valid: each annotated box at score 0.9, plus a 0.1 decoy."""
    annotations = json.loads((sample.cracks / "valid" / ANNOTATION_FILE).read_text())
    results = []
    for ann in annotations["annotations"]:
        results.append(
            {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": ann["bbox"], "score": 0.9}
        )
        results.append(
            {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [0, 0, 5, 5], "score": 0.1}
        )
    path = tmp_path_factory.mktemp("detections") / "results.json"
    path.write_text(json.dumps(results))
    return path


def _image_tensor(sample, size: int = 96) -> torch.Tensor:
    """A sample's image as the model sees it: stretched to a square (here larger than the file)."""
    image = torch.from_numpy(np.array(sample.load_image())).permute(2, 0, 1).float().div(255)[None]
    return torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


def _expected_boxes(sample, class_name: str) -> np.ndarray:
    scale = np.array([sample.width, sample.height, sample.width, sample.height], np.float32)
    return sample.boxes(class_name) / scale


def test_coco_results_boxes_are_found_by_image_content(coco_results, sample, cracks_valid):
    config = BoxSourceConfig(boxes=f"coco:{coco_results}", box_images=str(sample.cracks / "valid" / ANNOTATION_FILE))
    source = build_box_source(config, PromptConfig.default())
    target = next(s for s in cracks_valid if "crack" in s.classes)
    boxes, scores, valid = source.boxes_tensor(_image_tensor(target), ["crack"])
    expected = _expected_boxes(target, "crack")
    assert int(valid.sum()) == len(expected)  # the 0.1 decoys fall below box_score_threshold
    np.testing.assert_allclose(np.sort(boxes[0][valid[0]].numpy(), axis=0), np.sort(expected, axis=0), atol=1e-5)
    assert torch.allclose(scores[valid], torch.tensor(0.9))
    # Another class, or no class (an unknown prompt), gets no boxes.
    assert not source.boxes_tensor(_image_tensor(target), ["taping_area"])[2].any()
    assert not source.boxes_tensor(_image_tensor(target), [None])[2].any()
    assert not source.uses_ground_truth


def test_yolo_boxes_with_names_from_data_yaml(sample, cracks_valid, tmp_path):
    images, labels = tmp_path / "valid" / "images", tmp_path / "valid" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    (tmp_path / "data.yaml").write_text("names: [crack]\n")
    for s in cracks_valid:
        shutil.copy(s.image_path, images / s.image_path.name)
        lines = [
            f"0 {(x1 + x2) / 2} {(y1 + y2) / 2} {x2 - x1} {y2 - y1} 0.8"
            for x1, y1, x2, y2 in _expected_boxes(s, "crack")
        ]
        (labels / f"{s.image_path.stem}.txt").write_text("\n".join(lines))
    source = build_box_source(BoxSourceConfig(boxes=f"yolo:{labels}"), PromptConfig.default())
    target = next(s for s in cracks_valid if "crack" in s.classes)
    boxes, _, valid = source.boxes_tensor(_image_tensor(target, 64), ["crack"])
    np.testing.assert_allclose(
        np.sort(boxes[0][valid[0]].numpy(), axis=0), np.sort(_expected_boxes(target, "crack"), axis=0), atol=1e-5
    )


def test_unlisted_image_gets_no_boxes_and_a_warning(coco_results, sample):
    config = BoxSourceConfig(boxes=f"coco:{coco_results}", box_images=str(sample.cracks / "valid" / ANNOTATION_FILE))
    source = build_box_source(config, PromptConfig.default())
    with pytest.warns(UserWarning, match="match no listed image"):
        _, _, valid = source.boxes_tensor(torch.zeros(1, 3, 64, 64), ["crack"])
    assert not valid.any() and source.unmatched == 1


def test_zero_shot_detector_and_model_mask_sources(sample, cracks_valid, tmp_path):
    detector = build_box_source(
        BoxSourceConfig(
            boxes=f"detector:{save_tiny_checkpoint('grounding-dino', tmp_path / 'gd')}",
            box_score_threshold=0.0,
            max_boxes=3,
        ),
        PromptConfig.default(),
    )
    assert isinstance(detector, DetectorBoxes) and detector.queries["taping_area"] == "taping area"
    images = torch.rand(2, 3, 64, 64)
    boxes, _, valid = detector.boxes_tensor(images, ["crack", None])
    assert boxes.shape[1] <= 3 and valid[0].any() and not valid[1].any()
    assert ((boxes[valid] >= 0) & (boxes[valid] <= 1)).all()

    unet = build_model("promptunet", pretrained=False, text_encoder="hashing", image_size=64)
    with torch.no_grad():
        unet.mask_head.bias.fill_(10.0)  # everything foreground: one component, the whole image
    folder = unet.save_pretrained(tmp_path / "unet")
    source = build_box_source(BoxSourceConfig(boxes=f"model:{folder}"), PromptConfig.default())
    assert isinstance(source, ModelMaskBoxes)
    boxes, _, valid = source.boxes_tensor(images, ["crack", "taping_area"])
    assert valid.all() and torch.allclose(boxes[:, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]).expand(2, 4))


def test_merge_is_the_maximum_over_valid_boxes():
    masks = torch.tensor([[[[1.0]], [[3.0]], [[9.0]]], [[[1.0]], [[2.0]], [[3.0]]]])  # (B=2, K=3, 1, 1)
    valid = torch.tensor([[True, True, False], [False, False, False]])
    merged = merge_prompt_masks(masks, valid)
    assert merged.shape == (2, 1, 1, 1) and merged[0].item() == 3.0 and merged[1].item() == EMPTY_LOGIT


def test_evaluate_and_predict_with_detector_file_boxes(weights, coco_results, sample, cracks_valid):
    overrides = {"boxes": f"coco:{coco_results}", "box_images": str(sample.cracks / "valid" / ANNOTATION_FILE)}
    model = build_from_spec(f"two-stage:{weights}", overrides)
    assert isinstance(model, TwoStage) and model.config.weights == weights
    predictor = model_predictor(model, device="cpu")
    assert predictor.name == f"two-stage+boxes:coco:{coco_results}"
    assert predictor.metadata["box_prompts_from_ground_truth"] is False
    report = evaluate(
        predictor, [AnnotatedDataset.load(sample.cracks)], split="valid", max_images=2, batch_size=2, progress=False
    )
    assert report.metadata.predictor == predictor.name and "crack" in report.classes
    target = next(s for s in cracks_valid if "crack" in s.classes)
    image = target.load_image()
    found = predictor.predict(image, "segment crack")
    assert found.mask.shape == image.shape[:2]
    # The taping-area prompt has no boxes in this file: an empty mask, confidence 0.5 (undecided).
    empty = predictor.predict(image, "segment taping area")
    assert not empty.mask.any() and empty.confidence == pytest.approx(0.5)


def test_ground_truth_boxes_are_flagged(weights, sample):
    model = build_model("two-stage", weights=weights, boxes=f"annotations:{sample.cracks}").eval()
    assert model.metadata["box_prompts_from_ground_truth"] is True
    assert "upper bound" in model.metadata["box_prompts"]


def test_zero_shot_only_and_config_errors(weights, coco_results):
    model = build_model("two-stage", weights=weights, boxes="full-image")
    model.train()
    with pytest.raises(ConfigError, match="two-stage is zero-shot"):
        model.segment(torch.rand(1, 3, 64, 64), ["segment crack"])
    with pytest.raises(ConfigError, match="needs a box source"):
        build_model("two-stage", weights=weights)
    with pytest.raises(ConfigError, match="unknown box source"):
        build_model("two-stage", weights=weights, boxes="ssd:x.json")
    with pytest.raises(ConfigError, match="needs box_images"):
        build_model("two-stage", weights=weights, boxes=f"coco:{coco_results}")


def test_python_box_sources_refuse_export(weights, coco_results, sample):
    model = build_model(
        "two-stage",
        weights=weights,
        boxes=f"coco:{coco_results}",
        box_images=str(sample.cracks / "valid" / ANNOTATION_FILE),
    ).eval()
    with pytest.raises(DrywallQAError, match="cannot be exported"):
        torch.export.export(model, (torch.rand(1, 3, 64, 64), model.embed_prompts(["segment crack"])))


@pytest.mark.parametrize("prompt", ["segment crack", "detect crack", "highlight the tape", "segment drywall seam",
                                    "segment drywall cracks near the window", "segment mould", "find all"])
def test_two_stage_maps_prompts_to_classes_by_the_one_rule(prompt):
    # Two-stage's class one-hot and serving's QA rules must agree on every prompt: before, "detect
    # crack" was a crack for serving and nothing for two-stage (an empty mask serving then judged).
    from drywallqa.models.two_stage import PromptClassEncoder

    config = PromptConfig.default()
    expected = config.class_of(prompt)
    assert PromptClassEncoder(config).class_of(prompt) == (expected.name if expected else None)
    assert (PromptClassEncoder(config).class_of("detect crack"), config.class_of("segment mould")) == ("crack", None)
