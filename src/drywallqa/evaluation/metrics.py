"""Segmentation and box metrics, defined once for training, evaluation and benchmarks.

The shape follows ``segmentation_models_pytorch.metrics``: count per-image true/false
positives/negatives once with :func:`get_stats`, then derive a score from the counts with an
explicit ``reduction`` and an explicit empty-mask rule (``zero_division``):

>>> import numpy as np
>>> truth = np.zeros((2, 4, 4), dtype=bool); truth[0, :2] = True     # image 1 is empty
>>> pred = np.zeros((2, 4, 4), dtype=bool); pred[0, :1] = True
>>> stats = get_stats(pred, truth)
>>> stats.tp, stats.fp, stats.fn
(array([4, 0]), array([0, 0]), array([4, 0]))
>>> iou_score(*stats, reduction="per-image")   # (0.5 + 1.0) / 2: empty/empty scores 1.0
0.75
>>> iou_score(*stats, reduction="pooled")      # 4 / 8 over all pixels
0.5

Conventions (the same for NumPy arrays and torch tensors):

- **Binarisation:** bool inputs are used as they are; float inputs need ``threshold`` and a pixel
  is foreground when ``value > threshold``, the rule every predictor applies
  (:func:`drywallqa.processing.foreground`). Pass probabilities with a threshold in ``(0, 1)``, or
  logits with ``threshold=0.0``.
- **Shapes:** ``(H, W)`` is one image; ``(N, H, W)`` and ``(N, 1, H, W)`` are batches. Counts
  always come back per image, shape ``(N,)`` (``(1,)`` for a single image).
- **Reductions:** ``"per-image"`` scores every image, then averages over images (each image
  weighs the same, so small cracks count as much as large joints); ``"pooled"`` sums the counts
  over all images first and scores once (each pixel weighs the same, "micro" in smp);
  ``"none"`` returns the per-image scores.
- **Empty-mask rule:** an image where truth *and* prediction are both empty has no defined IoU
  or Dice; it scores ``zero_division`` (default ``1.0``: correctly predicting "nothing here" is a
  perfect answer). Truth empty but prediction not gives ``tp = 0, fp > 0`` and scores ``0.0``.
  Pass ``zero_division=float("nan")`` to leave such images out of the per-image mean instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from drywallqa.processing import foreground

Reduction = Literal["per-image", "pooled", "none"]
REDUCTIONS = ("per-image", "pooled", "none")


# -- pixel counts ---------------------------------------------------------------------------------
class PixelStats(NamedTuple):
    """Per-image confusion counts, each of shape ``(N,)`` (int64 array or long tensor).

    Unpacks like smp's ``get_stats`` tuple: ``tp, fp, fn, tn = get_stats(...)``.
    """

    tp: Any
    fp: Any
    fn: Any
    tn: Any


def _is_torch(x: object) -> bool:
    # Checked by module name so NumPy-only callers never import torch.
    return type(x).__module__.startswith("torch")


def _as_batch(x, name: str):
    """``(H, W)`` → ``(1, H, W)``; ``(N, 1, H, W)`` → ``(N, H, W)``; ``(N, H, W)`` unchanged."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.ndim == 3:
        return x
    raise ValueError(f"{name} must have shape (H, W), (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")


def _binarise(x, threshold: float | None, name: str):
    if str(x.dtype) in ("bool", "torch.bool"):
        return x
    if threshold is None:
        raise ValueError(
            f"{name} has dtype {x.dtype}; pass a bool mask, or give threshold= to binarise "
            "probabilities (e.g. 0.5) or logits (0.0)"
        )
    return foreground(x, threshold)


def get_stats(prediction, truth, *, threshold: float | None = None, ignore=None) -> PixelStats:
    """Count true/false positives/negatives per image.

    Works on NumPy arrays and on torch tensors (the result has the input's library; torch counts
    stay on the input's device).

    Args:
        prediction: Predicted masks, ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``; bool, or float
            probabilities/logits binarised with ``> threshold`` (:func:`drywallqa.processing.foreground`).
        truth: True masks of the same shape; bool, or float/int binarised with ``>= 0.5``
            (0/1 targets) when not bool.
        threshold: Binarisation threshold for a non-bool ``prediction``.
        ignore: Optional bool mask of the same shape; True pixels are left out of every count
            (e.g. pixels of another class's truth when scoring a wrong prompt).

    Returns:
        :class:`PixelStats` ``(tp, fp, fn, tn)``, each of shape ``(N,)``: int64 arrays for NumPy
        input, long tensors for torch input.

    Raises:
        ValueError: If the shapes differ or a float prediction comes without a threshold.
    """
    if tuple(prediction.shape) != tuple(truth.shape):
        raise ValueError(f"prediction shape {tuple(prediction.shape)} != truth shape {tuple(truth.shape)}")
    pred = _as_batch(_binarise(prediction, threshold, "prediction"), "prediction")
    true = _as_batch(_binarise(truth, 0.5, "truth"), "truth")
    if ignore is not None:
        if tuple(ignore.shape) != tuple(prediction.shape):
            raise ValueError(f"ignore shape {tuple(ignore.shape)} != prediction shape {tuple(prediction.shape)}")
        keep = ~_as_batch(_binarise(ignore, 0.5, "ignore"), "ignore")
    else:
        keep = None

    if _is_torch(pred):
        import torch

        def count(m):
            m = m if keep is None else m & keep
            return m.reshape(m.shape[0], -1).sum(dim=1, dtype=torch.long)
    else:

        def count(m):
            m = m if keep is None else m & keep
            return m.reshape(m.shape[0], -1).sum(axis=1, dtype=np.int64)

    return PixelStats(count(pred & true), count(pred & ~true), count(~pred & true), count(~pred & ~true))


# -- scores from counts ---------------------------------------------------------------------------
def _ratio(numerator, denominator, reduction: str, zero_division: float):
    """``numerator / denominator`` per image or pooled, with ``zero_division`` where 0 / 0."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if _is_torch(numerator):
        import torch

        num, den = numerator.double(), denominator.double()
        if reduction == "pooled":
            num, den = num.sum(), den.sum()
        score = torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float(zero_division)))
        if reduction == "per-image":
            return score.nanmean() if math.isnan(zero_division) else score.mean()
        return score
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if reduction == "pooled":
        num, den = num.sum(), den.sum()
    score = np.where(den > 0, num / np.maximum(den, 1), float(zero_division))
    if reduction == "none":
        return score
    if score.size == 0:
        return float("nan")
    if math.isnan(zero_division):
        return float(np.nanmean(score)) if np.isfinite(score).any() else float("nan")
    return float(np.mean(score))


def iou_score(tp, fp, fn, tn=None, *, reduction: Reduction = "per-image", zero_division: float = 1.0):
    """Intersection over union ``tp / (tp + fp + fn)`` (Jaccard index).

    Args:
        tp, fp, fn: Per-image counts of shape ``(N,)`` from :func:`get_stats`.
        tn: Accepted so ``iou_score(*get_stats(...))`` works; unused.
        reduction: ``"per-image"`` (mean of per-image scores), ``"pooled"`` (one score from the
            counts summed over images) or ``"none"`` (the ``(N,)`` per-image scores).
        zero_division: Score of an image (or pooled set) where truth and prediction are both
            empty. Default 1.0; ``nan`` drops such images from the per-image mean.

    Returns:
        A float (NumPy input) or 0-d tensor (torch input); an ``(N,)`` array/tensor for ``"none"``.
    """
    return _ratio(tp, tp + fp + fn, reduction, zero_division)


def dice_score(tp, fp, fn, tn=None, *, reduction: Reduction = "per-image", zero_division: float = 1.0):
    """Dice coefficient / F1 ``2 tp / (2 tp + fp + fn)``; arguments as :func:`iou_score`."""
    return _ratio(2 * tp, 2 * tp + fp + fn, reduction, zero_division)


def positive_rate(tp, fp, fn, tn, *, reduction: Reduction = "per-image", zero_division: float = 0.0):
    """Share of counted pixels predicted as foreground, ``(tp + fp) / (tp + fp + fn + tn)``.

    With an empty truth this is the false-positive pixel rate (the wrong-prompt measure).
    ``zero_division`` applies to an image with no counted pixels (all ignored).
    """
    return _ratio(tp + fp, tp + fp + fn + tn, reduction, zero_division)


# -- summaries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanStd:
    """Mean and population standard deviation (``ddof=0``) over ``n`` finite values."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f} (n={self.n})"

    def to_dict(self) -> dict:
        return {"mean": _finite_or_none(self.mean), "std": _finite_or_none(self.std), "n": self.n}


def mean_std(values: Iterable[float]) -> MeanStd:
    """Mean ± std of the finite values (NaNs are skipped and not counted in ``n``).

    >>> mean_std([0.5, 1.0, float("nan")])
    MeanStd(mean=0.75, std=0.25, n=2)
    """
    arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return MeanStd(float("nan"), float("nan"), 0)
    return MeanStd(float(arr.mean()), float(arr.std()), int(arr.size))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of paired values, NaN-safe.

    Pairs where either value is not finite are dropped. Returns NaN when fewer than two pairs
    remain or either side is constant (correlation undefined), never raising or warning.
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"x and y must have the same length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 2:
        return float("nan")
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((da * db).sum() / denom, -1.0, 1.0))


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined values become ``null``."""
    return None if value is None or not math.isfinite(value) else float(value)


# -- boxes ----------------------------------------------------------------------------------------
def mask_to_boxes(mask: np.ndarray, *, min_area: int = 1, connectivity: int = 8) -> np.ndarray:
    """Boxes of the connected components of a mask.

    Args:
        mask: ``(H, W)`` bool mask.
        min_area: Components with fewer pixels are dropped.
        connectivity: 8 (diagonal neighbours connect, so a thin diagonal crack is one component)
            or 4.

    Returns:
        ``(K, 4)`` float32 xyxy boxes with exclusive right/bottom edges (a one-pixel component at
        ``(x, y)`` gives ``[x, y, x + 1, y + 1]``), in component-label order.
    """
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape (H, W), got {mask.shape}")
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    stats = stats[1:]  # label 0 is the background
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= min_area]
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    w, h = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32).reshape(-1, 4)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: ``(N, 4)`` × ``(M, 4)`` → ``(N, M)`` float64."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class BoxStats(NamedTuple):
    """Box matching counts: matched predictions (tp), unmatched predictions (fp), missed truths (fn)."""

    tp: int
    fp: int
    fn: int


def match_boxes(
    predicted: np.ndarray,
    truth: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    method: Literal["greedy", "hungarian"] = "greedy",
) -> tuple[BoxStats, np.ndarray]:
    """One-to-one matching of predicted to true boxes at ``IoU >= iou_threshold``.

    Args:
        predicted: ``(N, 4)`` xyxy boxes (e.g. from :func:`mask_to_boxes`).
        truth: ``(M, 4)`` xyxy annotated boxes.
        iou_threshold: Minimum IoU of a match.
        method: ``"greedy"`` takes pairs in order of decreasing IoU (the COCO way; deterministic,
            no extra dependency). ``"hungarian"`` maximises the number of matches and then their
            total IoU (needs SciPy); the two differ only when boxes overlap several candidates.

    Returns:
        ``(BoxStats(tp, fp, fn), pairs)`` where ``pairs`` is ``(tp, 2)`` int ``(pred_index, truth_index)``.
    """
    ious = box_iou(predicted, truth)
    n_pred, n_true = ious.shape
    pairs: list[tuple[int, int]] = []
    if n_pred and n_true:
        if method == "greedy":
            rows, cols = np.nonzero(ious >= iou_threshold)
            order = np.lexsort((cols, rows, -ious[rows, cols]))  # IoU desc, ties by index
            used_p, used_t = set(), set()
            for k in order:
                p, t = int(rows[k]), int(cols[k])
                if p not in used_p and t not in used_t:
                    used_p.add(p)
                    used_t.add(t)
                    pairs.append((p, t))
        elif method == "hungarian":
            try:
                from scipy.optimize import linear_sum_assignment
            except ImportError as exc:  # pragma: no cover - depends on the environment
                from drywallqa.errors import ConfigError

                raise ConfigError("method='hungarian' needs SciPy: pip install scipy (or use method='greedy')") from exc
            valid = ious >= iou_threshold
            # Each valid pair is worth 1 plus its IoU, so the count of matches comes first.
            rows, cols = linear_sum_assignment(np.where(valid, 1.0 + ious, 0.0), maximize=True)
            pairs = [(int(p), int(t)) for p, t in zip(rows, cols) if valid[p, t]]
        else:
            raise ValueError(f"method must be 'greedy' or 'hungarian', got {method!r}")
    tp = len(pairs)
    return BoxStats(tp, n_pred - tp, n_true - tp), np.array(pairs, dtype=np.int64).reshape(-1, 2)


def detection_scores(tp: int, fp: int, fn: int, *, zero_division: float = 1.0) -> dict[str, float]:
    """Precision, recall and F1 from (pooled) box counts.

    ``zero_division`` is used for a ratio whose denominator is zero (no predictions for
    precision, no truths for recall, neither for F1): with nothing to find and nothing found the
    answer is perfect by default, as for masks.

    Returns:
        ``{"precision": ..., "recall": ..., "f1": ...}``.
    """
    precision = tp / (tp + fp) if tp + fp else float(zero_division)
    recall = tp / (tp + fn) if tp + fn else float(zero_division)
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else float(zero_division)
    return {"precision": precision, "recall": recall, "f1": f1}


def box_stats_from_mask(
    predicted_mask: np.ndarray, true_boxes: np.ndarray, *, iou_threshold: float = 0.5, min_area: int = 1
) -> BoxStats:
    """Components of ``predicted_mask`` → boxes, matched to ``true_boxes`` (``(M, 4)`` xyxy)."""
    stats, _ = match_boxes(mask_to_boxes(predicted_mask, min_area=min_area), true_boxes, iou_threshold=iou_threshold)
    return stats
