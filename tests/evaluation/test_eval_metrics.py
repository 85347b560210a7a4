"""Metrics against hand-computed tiny cases, and NumPy/torch agreement."""

import math

import numpy as np
import pytest
import torch

from drywallqa.evaluation.metrics import (
    box_iou,
    detection_scores,
    dice_score,
    get_stats,
    iou_score,
    mask_to_boxes,
    match_boxes,
    mean_std,
    pearson,
    positive_rate,
)


def _mask(shape, *slices):
    m = np.zeros(shape, dtype=bool)
    for s in slices:
        m[s] = True
    return m


# -- counts ---------------------------------------------------------------------------------------
def test_get_stats_counts_one_image_by_hand():
    truth = _mask((4, 4), np.s_[0, :])          # 4 pixels
    pred = _mask((4, 4), np.s_[0, :2], np.s_[1, :1])  # 2 hits + 1 false positive
    tp, fp, fn, tn = get_stats(pred, truth)
    assert (tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist()) == ([2], [1], [2], [11])
    assert iou_score(tp, fp, fn) == pytest.approx(2 / 5)
    assert dice_score(tp, fp, fn) == pytest.approx(4 / 7)


@pytest.mark.parametrize(
    "truth_pixels, pred_pixels, zero_division, expected",
    [
        (0, 0, 1.0, 1.0),   # both empty: the documented default rule
        (0, 0, 0.0, 0.0),   # ... or whatever the caller states
        (0, 3, 1.0, 0.0),   # empty truth with predictions is simply wrong
        (3, 0, 1.0, 0.0),   # missed everything
        (3, 3, 1.0, 1.0),
    ],
)
def test_empty_mask_rule(truth_pixels, pred_pixels, zero_division, expected):
    truth = np.zeros(10, dtype=bool).reshape(2, 5)
    pred = truth.copy()
    truth.flat[:truth_pixels] = True
    pred.flat[:pred_pixels] = True
    stats = get_stats(pred, truth)
    for reduction in ("per-image", "pooled"):
        assert iou_score(*stats, reduction=reduction, zero_division=zero_division) == expected
        assert dice_score(*stats, reduction=reduction, zero_division=zero_division) == expected


def test_nan_zero_division_leaves_empty_images_out_of_the_mean():
    truth = np.stack([_mask((2, 2), np.s_[0]), _mask((2, 2))])
    pred = np.stack([_mask((2, 2), np.s_[0, 0]), _mask((2, 2))])
    stats = get_stats(pred, truth)
    assert iou_score(*stats, zero_division=float("nan")) == 0.5
    assert iou_score(*stats) == 0.75
    none = iou_score(*stats, reduction="none", zero_division=float("nan"))
    assert none[0] == 0.5 and math.isnan(none[1])


def test_pooled_differs_from_per_image():
    # Image 0: 4 px truth, hit exactly (IoU 1). Image 1: 12 px truth, nothing predicted (IoU 0).
    truth = np.stack([_mask((4, 4), np.s_[0]), _mask((4, 4), np.s_[1:])])
    pred = np.stack([_mask((4, 4), np.s_[0]), _mask((4, 4))])
    stats = get_stats(pred, truth)
    assert iou_score(*stats, reduction="per-image") == pytest.approx(0.5)
    assert iou_score(*stats, reduction="pooled") == pytest.approx(4 / 16)
    assert dice_score(*stats, reduction="per-image") == pytest.approx(0.5)
    assert dice_score(*stats, reduction="pooled") == pytest.approx(8 / 20)
    np.testing.assert_allclose(iou_score(*stats, reduction="none"), [1.0, 0.0])


def test_ignore_drops_pixels_from_every_count():
    pred = np.ones((2, 4), dtype=bool)
    ignore = _mask((2, 4), np.s_[:, :2])
    tp, fp, fn, tn = get_stats(pred, np.zeros_like(pred), ignore=ignore)
    assert (tp[0], fp[0], fn[0], tn[0]) == (0, 4, 0, 0)
    assert positive_rate(tp, fp, fn, tn) == 1.0


def test_probabilities_need_a_threshold_and_use_the_predictors_rule():
    # Foreground is p > threshold, as every predictor thresholds (issue 15: one comparison), so a
    # probability exactly at the threshold is background in evaluation and prediction alike.
    probs = np.array([[0.2, 0.5], [0.7, 0.49]], dtype=np.float32)
    truth = np.array([[False, True], [True, False]])
    with pytest.raises(ValueError, match="threshold"):
        get_stats(probs, truth)
    tp, fp, fn, _ = get_stats(probs, truth, threshold=0.5)
    assert (tp[0], fp[0], fn[0]) == (1, 0, 1)
    from drywallqa.processing import foreground, logit_threshold

    logits = np.log(probs / (1 - probs))
    np.testing.assert_array_equal(foreground(probs, 0.3), logits > logit_threshold(0.3))


@pytest.mark.parametrize(
    "pred_shape, truth_shape, message",
    [((4, 4), (4, 5), "shape"), ((2, 3, 4, 4), (2, 3, 4, 4), "N, 1, H, W"), ((4,), (4,), "H, W")],
)
def test_bad_shapes_raise_with_expected_and_got(pred_shape, truth_shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        get_stats(np.zeros(pred_shape, bool), np.zeros(truth_shape, bool))


def test_unknown_reduction_lists_the_options():
    stats = get_stats(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="per-image"):
        iou_score(*stats, reduction="macro")


@pytest.mark.parametrize("layout", ["B1HW", "BHW"])
@pytest.mark.parametrize("zero_division", [1.0, 0.0])
def test_numpy_and_torch_agree(layout, zero_division):
    rng = np.random.default_rng(0)
    shape = (5, 1, 9, 7) if layout == "B1HW" else (5, 9, 7)
    probs = rng.random(shape).astype(np.float32)
    truth = rng.random(shape) > 0.7
    truth[0] = False
    probs[0] = 0.0  # one empty/empty image exercises zero_division
    stats_np = get_stats(probs, truth, threshold=0.6)
    stats_t = get_stats(torch.from_numpy(probs), torch.from_numpy(truth), threshold=0.6)
    assert all(t.dtype == torch.long and t.shape == (5,) for t in stats_t)
    for a, b in zip(stats_np, stats_t):
        np.testing.assert_array_equal(a, b.numpy())
    for fn in (iou_score, dice_score):
        for reduction in ("per-image", "pooled", "none"):
            got = fn(*stats_t, reduction=reduction, zero_division=zero_division)
            assert isinstance(got, torch.Tensor)
            np.testing.assert_allclose(got.numpy(), fn(*stats_np, reduction=reduction, zero_division=zero_division))


def test_torch_bool_masks_and_logits():
    logits = torch.tensor([[[[-1.0, 2.0], [0.5, -3.0]]]])  # (1, 1, 2, 2)
    truth = torch.tensor([[[[False, True], [True, False]]]])
    tp, fp, fn, tn = get_stats(logits, truth, threshold=0.0)
    assert (tp.item(), fp.item(), fn.item(), tn.item()) == (2, 0, 0, 2)
    assert float(iou_score(tp, fp, fn)) == 1.0
    # A logit of exactly 0 (probability 0.5) is background, as in every predictor.
    tp, fp, fn, tn = get_stats(torch.zeros(1, 1, 2, 2), truth, threshold=0.0)
    assert (tp.item(), fp.item(), fn.item(), tn.item()) == (0, 0, 2, 2)


# -- summaries ------------------------------------------------------------------------------------
def test_mean_std_skips_nan_and_handles_empty():
    ms = mean_std([0.0, 1.0, float("nan")])
    assert (ms.mean, ms.std, ms.n) == (0.5, 0.5, 2)
    assert str(ms) == "0.500 ± 0.500 (n=2)"
    empty = mean_std([])
    assert empty.n == 0 and math.isnan(empty.mean)
    assert empty.to_dict() == {"mean": None, "std": None, "n": 0}


def test_pearson_by_hand_and_nan_safe():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert pearson([1, 2, float("nan"), 3], [2, 4, 100, 6]) == pytest.approx(1.0)  # NaN pair dropped
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))  # constant side: undefined, no warning
    assert math.isnan(pearson([1], [2]))
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2], [1])


# -- boxes ----------------------------------------------------------------------------------------
def test_mask_to_boxes_components_connectivity_and_min_area():
    mask = np.zeros((10, 10), dtype=bool)
    mask[1:3, 1:4] = True        # 6-pixel blob
    mask[6, 6] = mask[7, 7] = True  # diagonal pair: one component with 8-connectivity
    np.testing.assert_array_equal(mask_to_boxes(mask), [[1, 1, 4, 3], [6, 6, 8, 8]])
    assert len(mask_to_boxes(mask, connectivity=4)) == 3
    np.testing.assert_array_equal(mask_to_boxes(mask, min_area=3), [[1, 1, 4, 3]])
    assert mask_to_boxes(np.zeros((4, 4), bool)).shape == (0, 4)


def test_box_iou_by_hand():
    ious = box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 2, 2]])
    np.testing.assert_allclose(ious, [[2 / 6, 0.0, 1.0]])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_match_boxes_counts_and_threshold():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    pred = np.array([[0, 0, 10, 11], [20, 20, 24, 24], [60, 60, 61, 61]])
    stats, pairs = match_boxes(pred, truth)
    assert stats == (1, 2, 2)
    assert pairs.tolist() == [[0, 0]]
    assert detection_scores(*stats) == pytest.approx({"precision": 1 / 3, "recall": 1 / 3, "f1": 1 / 3})


def test_hungarian_can_beat_greedy():
    pytest.importorskip("scipy")  # method="hungarian" is optional
    # 1-pixel-high intervals: P0 overlaps T0 (0.82) and T1 (0.67); P1 overlaps only T0 (0.67).
    truth = np.array([[0, 0, 10, 1], [3, 0, 13, 1]])
    pred = np.array([[1, 0, 11, 1], [-2, 0, 8, 1]])
    greedy, _ = match_boxes(pred, truth, method="greedy")
    hungarian, pairs = match_boxes(pred, truth, method="hungarian")
    assert greedy.tp == 1 and hungarian.tp == 2
    assert sorted(pairs.tolist()) == [[0, 1], [1, 0]]


def test_detection_scores_by_hand_and_empty():
    assert detection_scores(2, 1, 1) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert detection_scores(0, 0, 0) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert detection_scores(0, 3, 0) == {"precision": 0.0, "recall": 1.0, "f1": 0.0}
