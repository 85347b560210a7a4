"""Evaluation: metrics defined once (:mod:`.metrics`) and :func:`evaluate` → :class:`EvalReport`.

Example:
    >>> from drywallqa.evaluation import evaluate                  # doctest: +SKIP
    >>> report = evaluate(predictor, [cracks, drywall_join], split="valid")
    >>> report.render(); report.write("runs/eval-valid")
"""

from drywallqa.evaluation.calibration import SWEEP_THRESHOLDS, calibrate_thresholds
from drywallqa.evaluation.evaluate import evaluate
from drywallqa.evaluation.leakage import TrainingGroups, TrainingOverlap, training_overlap
from drywallqa.evaluation.metrics import (
    BoxStats,
    MeanStd,
    PixelStats,
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
from drywallqa.evaluation.report import (
    DEFINITIONS,
    BoxScores,
    ClassScores,
    EvalMetadata,
    EvalReport,
    ImageRecord,
    ParaphraseScores,
    ThresholdSweep,
    WrongPromptScores,
)
from drywallqa.evaluation.scoring import class_samples
from drywallqa.evaluation.targets import is_pseudo_mask, target_kind, truth_mask

__all__ = [
    "DEFINITIONS", "SWEEP_THRESHOLDS", "BoxScores", "BoxStats", "ClassScores", "EvalMetadata", "EvalReport",
    "ImageRecord", "MeanStd", "ParaphraseScores", "PixelStats", "ThresholdSweep", "TrainingGroups", "TrainingOverlap",
    "WrongPromptScores", "box_iou", "calibrate_thresholds", "class_samples", "detection_scores", "dice_score",
    "evaluate", "get_stats", "iou_score", "is_pseudo_mask", "mask_to_boxes", "match_boxes", "mean_std", "pearson",
    "positive_rate", "target_kind", "training_overlap", "truth_mask",
]
