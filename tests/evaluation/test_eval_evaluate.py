"""evaluate() with fake predictors of known quality on the synthetic sample data."""

import dataclasses

import numpy as np
import pytest
from eval_fixtures import (  # noqa: F401 (fixture)
    PROMPTS,
    LookupPredictor,
    empty,
    full,
    perfect,
    shifted,
    synthetic_fixture,
)

from drywallqa.data import AnnotatedDataset, Annotation
from drywallqa.data.masks import mask_to_rle
from drywallqa.errors import ConfigError, DataError
from drywallqa.evaluation import evaluate
from drywallqa.evaluation.targets import target_kind, truth_mask


def test_perfect_predictor_scores_one_and_never_answers_wrong_prompts(synthetic):
    predictor = LookupPredictor(synthetic, perfect)
    report = evaluate(predictor, synthetic, split="valid", progress=False)
    assert set(report.classes) == {"crack", "taping_area"}
    assert report.classes["crack"].target == "mask" and report.classes["taping_area"].target == "box"
    for scores in report.classes.values():
        assert scores.images == len([r for r in report.records if r.class_name == scores.class_name]) > 0
        assert scores.iou.mean == scores.dice.mean == 1.0 and scores.iou.std == 0.0
        assert scores.iou_pooled == scores.dice_pooled == 1.0
        assert scores.wrong_prompt_fp_rate.mean == 0.0 and scores.wrong_prompt_images_with_fp == 0.0
        (wrong,) = scores.wrong_prompts
        assert wrong.prompt_class != scores.class_name and wrong.fp_rate.n == scores.images
        assert [p.prompt for p in scores.paraphrases] == list(PROMPTS.classes[scores.class_name].heldout)
        assert all(p.iou.mean == 1.0 and p.drop == 0.0 for p in scores.paraphrases)
    for scores, ds in zip(report.classes.values(), synthetic):
        boxes = sum(len(s.boxes(scores.class_name)) for s in ds.split("valid"))
        assert scores.box.tp + scores.box.fn == boxes and scores.box.tp > 0
    meta = report.metadata
    assert (meta.predictor, meta.split, meta.threshold, meta.threshold_source, meta.threshold_split) == (
        "lookup", "valid", 0.5, "fixed", None)
    assert meta.datasets == ["cracks", "drywall-join"]
    assert meta.images == sum(len(ds.split("valid")) for ds in synthetic)
    # Default threshold equals the predictor's: its masks are used, no probabilities asked for.
    assert not any(wants_probs for _, _, wants_probs in predictor.calls)


def test_empty_predictor_scores_zero_except_on_empty_truth(synthetic):
    report = evaluate(LookupPredictor(synthetic, empty), synthetic, progress=False)
    for scores in report.classes.values():
        assert scores.iou_pooled == 0.0 and scores.box.f1 == 0.0 and scores.box.tp == 0
        # Images without the class are empty/empty and score 1.0 by the documented rule.
        assert scores.iou.mean == pytest.approx(scores.empty_truth_images / scores.images)


def test_full_predictor_has_wrong_prompt_fp_rate_one(synthetic):
    report = evaluate(LookupPredictor(synthetic, full), synthetic, progress=False)
    for scores in report.classes.values():
        assert scores.wrong_prompt_fp_rate.mean == 1.0
        assert scores.wrong_prompt_images_with_fp == 1.0


def test_batches_and_max_images(synthetic):
    predictor = LookupPredictor(synthetic, perfect)
    report = evaluate(predictor, synthetic, batch_size=2, max_images=3, progress=False)
    assert all(scores.images == min(3, len(ds.split("valid"))) for scores, ds in zip(report.classes.values(), synthetic))
    assert max(size for size, _, _ in predictor.calls) == 2
    assert report.metadata.max_images == 3


def test_confidence_is_averaged_and_correlated_with_iou(synthetic):
    # A predictor that knows its own IoU exactly: confidence mean = IoU mean, correlation +1.
    def own_iou(sample, cls):
        image = sample.load_image()
        pred, truth = shifted(sample, cls, image) > 0, perfect(sample, cls, image) > 0
        union = (pred | truth).sum()
        return (pred & truth).sum() / union if union else 1.0

    report = evaluate(LookupPredictor(synthetic, shifted, confidence_fn=own_iou), synthetic, progress=False)
    for scores in report.classes.values():
        assert scores.iou.std > 0
        assert scores.confidence.mean == pytest.approx(scores.iou.mean)
        assert scores.confidence_iou_pearson == pytest.approx(1.0)


def _split_dependent(sample, cls, image):
    """Train: truth 0.9, rest 0.6 (best threshold in (0.6, 0.9]). Valid: truth 0.4, rest 0.1."""
    truth = perfect(sample, cls, image) > 0
    high, low = (0.9, 0.6) if sample.split == "train" else (0.4, 0.1)
    return np.where(truth, high, low).astype(np.float32)


def test_sweep_chooses_the_threshold_on_the_other_split(synthetic):
    predictor = LookupPredictor(synthetic, _split_dependent)
    report = evaluate(predictor, synthetic, split="valid", sweep_split="train", progress=False)
    meta = report.metadata
    assert (meta.threshold_source, meta.threshold_split, meta.split) == ("sweep", "train", "valid")
    # Ties inside (0.6, 0.9] resolve to the one closest to 0.5.
    assert meta.threshold == report.sweep.chosen == 0.65
    assert report.sweep.split == "train" and report.sweep.images == sum(len(ds.split("train")) for ds in synthetic)
    assert max(report.sweep.mean_iou) == 1.0
    # A threshold chosen on valid would have been <= 0.4 and perfect there; at 0.65 valid finds nothing.
    assert all(scores.iou_pooled == 0.0 for scores in report.classes.values())
    assert all(wants_probs for _, _, wants_probs in predictor.calls)
    # Source groups in both splits (drywall-join has some on purpose) are reported.
    shared = {(s.dataset, s.group) for ds in synthetic for s in ds.split("train")} & {
        (s.dataset, s.group) for ds in synthetic for s in ds.split("valid")}
    assert any(f"{len(shared)} source group(s)" in note for note in report.notes) == bool(shared)


def test_fixed_threshold_other_than_the_predictors_uses_probabilities(synthetic):
    predictor = LookupPredictor(synthetic, _split_dependent)
    assert evaluate(predictor, synthetic, threshold=0.3, progress=False).classes["crack"].iou.mean == 1.0
    assert evaluate(predictor, synthetic, threshold=0.5, progress=False).classes["crack"].iou.mean == 0.0


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"sweep_split": "val"}, ConfigError, "must differ"),
        ({"split": "nope"}, DataError, "no dataset has split 'nope'"),
        ({"batch_size": 0}, ConfigError, "batch_size"),
        ({"threshold": 1.5}, ConfigError, "threshold"),
        ({"truth": "polygons"}, ConfigError, "'auto', 'mask' or 'box'"),
        ({"truth": {"taping_area": "mask"}}, ConfigError, "no annotated shape|none of its annotations"),
    ],
)
def test_invalid_options_fail_with_the_fix(synthetic, kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluate(LookupPredictor(synthetic, perfect), synthetic, progress=False, **kwargs)


def test_sweep_without_probabilities_names_the_problem(synthetic):
    predictor = LookupPredictor(synthetic, perfect, gives_probabilities=False)
    with pytest.raises(ConfigError, match="returned no probabilities"):
        evaluate(predictor, synthetic, sweep_split="train", progress=False)


def test_box_truth_can_be_forced_for_a_mask_class(synthetic):
    report = evaluate(LookupPredictor(synthetic, perfect), synthetic, truth={"crack": "box"}, progress=False)
    assert report.classes["crack"].target == "box"
    assert report.classes["crack"].iou_pooled < 1.0  # crack polygons are thinner than their boxes


# -- pseudo-masks are never truth -----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PseudoAnnotation(Annotation):
    """An annotation whose RLE came from a pseudo-mask method, flagged as such."""

    is_pseudo: bool = True


def _with_pseudo_masks(dataset: AnnotatedDataset) -> AnnotatedDataset:
    """Give every box a pseudo-mask: its left half, as RLE."""
    samples = []
    for s in dataset:
        anns = []
        for a in s.annotations:
            half = np.zeros((s.height, s.width), dtype=bool)
            x1, y1, x2, y2 = (round(v) for v in a.box)
            half[y1:y2, x1:(x1 + x2) // 2] = True
            anns.append(PseudoAnnotation(a.class_name, a.box, rle=mask_to_rle(half), category=a.category))
        samples.append(dataclasses.replace(s, annotations=tuple(anns)))
    return AnnotatedDataset(dataset.name, samples, dataset.class_names)


def test_pseudo_masks_are_scored_as_filled_boxes(synthetic):
    joints = _with_pseudo_masks(synthetic[1])
    sample = next(s for s in joints.split("valid") if s.annotations)
    assert sample.annotations[0].has_mask and target_kind([sample], "taping_area") == "box"
    np.testing.assert_array_equal(truth_mask(sample, "taping_area", "mask"), sample.box_mask("taping_area"))

    def pseudo_answer(s, cls, image):  # a model that learned the pseudo-masks perfectly
        return s.mask(cls).astype(np.float32) if cls in s.classes else np.zeros((s.height, s.width), np.float32)

    report = evaluate(LookupPredictor([joints], pseudo_answer), [joints], progress=False)
    scores = report.classes["taping_area"]
    assert scores.target == "box"
    assert scores.iou_pooled < 0.75  # half boxes against full boxes, not 1.0 against themselves
    assert evaluate(LookupPredictor([joints], perfect), [joints], progress=False).classes["taping_area"].iou_pooled == 1.0


def test_sweep_on_a_split_missing_a_class_says_so(synthetic):
    # Only cracks has a test split: the threshold is chosen on crack images alone.
    report = evaluate(LookupPredictor(synthetic, _split_dependent), synthetic, sweep_split="test", progress=False)
    assert report.metadata.threshold_split == "test" and list(report.sweep.per_class) == ["crack"]
    assert any("['taping_area'] have no images in 'test'" in note for note in report.notes)
