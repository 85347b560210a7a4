"""Threshold sweeps: the per-image mean IoU at each candidate threshold, and the best one.

:func:`calibrate_thresholds` chooses each class's mask threshold on a validation split (what
``drywallqa calibrate`` stores in a model folder); :func:`drywallqa.evaluation.evaluate` runs
the same sweep for ``sweep_split`` before it reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from drywallqa.console import progress_bar
from drywallqa.data.core import AnnotatedDataset, Sample, canonical_split
from drywallqa.data.prompts import PromptClass, PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.evaluation.metrics import get_stats, iou_score
from drywallqa.evaluation.report import ThresholdSweep
from drywallqa.evaluation.scoring import chunks, class_samples, predict_checked
from drywallqa.evaluation.targets import TargetKind, resolve_target_kinds, truth_mask

#: Candidate thresholds of a sweep: 0.05, 0.10, ..., 0.95.
SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def sweep_threshold(
    predictor,
    samples_by_class: Mapping[str, list[Sample]],
    split: str,
    kinds: Mapping[str, TargetKind],
    prompts: Mapping[str, PromptClass],
    thresholds: Sequence[float],
    batch_size: int,
    zero_division: float,
    advance: Callable[[int], None],
) -> ThresholdSweep:
    """Per-image mean IoU at each candidate threshold on the sweep split; pick the best."""
    candidates = np.asarray(sorted(float(t) for t in thresholds), dtype=np.float32)
    if candidates.size == 0 or candidates.min() < 0 or candidates.max() > 1:
        raise ConfigError(f"sweep thresholds must be probabilities in [0, 1], got {list(thresholds)}")
    name = str(getattr(predictor, "name", type(predictor).__name__))
    per_class: dict[str, list[float]] = {}
    for cls, samples in samples_by_class.items():
        ious = []  # one (T,) row per image
        for chunk in chunks(samples, batch_size):
            images = [s.load_image() for s in chunk]
            results = predict_checked(predictor, name, images, prompts[cls].prompt, probabilities=True)
            for sample, result in zip(chunk, results):
                truth = truth_mask(sample, cls, kinds[cls])
                masks = result.probabilities[None] >= candidates[:, None, None]  # (T, H, W)
                stats = get_stats(masks, np.broadcast_to(truth, masks.shape))
                ious.append(iou_score(*stats, reduction="none", zero_division=zero_division))
            advance(len(chunk))
        table = np.stack(ious)
        per_class[cls] = [float(v) for v in (np.nanmean(table, axis=0) if math.isnan(zero_division) else table.mean(axis=0))]
    objective = np.mean(np.array(list(per_class.values())), axis=0)
    return ThresholdSweep(
        split=split,
        thresholds=[round(float(t), 6) for t in candidates],
        mean_iou=[float(v) for v in objective],
        per_class=per_class,
        images=len({str(s.image_path) for samples in samples_by_class.values() for s in samples}),
        chosen=_best_threshold(candidates, objective),
        chosen_per_class={cls: _best_threshold(candidates, np.asarray(ious)) for cls, ious in per_class.items()},
    )


def _best_threshold(candidates: np.ndarray, objective: np.ndarray) -> float:
    """The candidate with the highest objective; ties (common with near-binary probabilities) go
    to the threshold closest to 0.5, then the lower."""
    best = np.nanmax(objective)
    tied = [float(t) for t, v in zip(candidates, objective) if v >= best - 1e-12]
    closest: float = min(tied, key=lambda t: (abs(t - 0.5), t))
    return round(closest, 6)


def calibrate_thresholds(
    predictor,
    datasets: AnnotatedDataset | Sequence[AnnotatedDataset],
    *,
    split: str = "valid",
    prompt_config: PromptConfig | None = None,
    truth: str | Mapping[str, str] = "auto",
    thresholds: Sequence[float] = SWEEP_THRESHOLDS,
    batch_size: int = 8,
    zero_division: float = 1.0,
    progress: bool = True,
) -> ThresholdSweep:
    """Choose each class's threshold on ``split``: the per-image mean IoU of its canonical prompt,
    maximised over ``thresholds`` (see :attr:`ThresholdSweep.chosen_per_class`).

    Use the validation groups of the model's own training run (``resplit_like_training``), never
    a split that is reported: ``drywallqa calibrate`` writes the result into the model folder,
    where predict, serve and evaluate pick it up by default.

    Raises:
        DataError: If no class is annotated in ``split``.
    """
    datasets = [datasets] if isinstance(datasets, AnnotatedDataset) else list(datasets)
    prompt_config = prompt_config or PromptConfig.default()
    split = canonical_split(split)
    samples_by_class = class_samples(datasets, split)
    kinds = resolve_target_kinds(truth, samples_by_class)
    prompts = {cls: prompt_config.resolve(cls) for cls in samples_by_class}
    total = sum(len(samples) for samples in samples_by_class.values())
    name = str(getattr(predictor, "name", type(predictor).__name__))
    with progress_bar(total, f"calibrating {name}", enabled=progress) as bar:
        return sweep_threshold(predictor, samples_by_class, split, kinds, prompts, thresholds, batch_size,
                                zero_division, bar.update)
