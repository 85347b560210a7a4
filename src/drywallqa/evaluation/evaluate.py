"""Evaluate any :class:`~drywallqa.inference.Predictor` on annotated datasets: :func:`evaluate`.

One pass per prompt class over the images of the datasets that annotate it:

1. the class's canonical prompt → IoU/Dice per image and pooled, box-level F1, confidence;
2. every *other* class's canonical prompt → wrong-prompt false positives (prompt fidelity);
3. the class's held-out paraphrases → IoU next to the canonical prompt's (paraphrase robustness).

Each image is loaded once per class and sent with all these prompts. Truth comes from the
annotations only (see :mod:`drywallqa.evaluation.targets`), and every score goes through
:mod:`drywallqa.evaluation.metrics`, so the numbers match training logs and benchmarks.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from drywallqa.data.core import AnnotatedDataset, Sample, canonical_split
from drywallqa.data.prompts import PromptClass, PromptConfig
from drywallqa.errors import ConfigError, DataError, DrywallQAError
from drywallqa.evaluation.metrics import (
    PixelStats,
    box_stats_from_mask,
    detection_scores,
    dice_score,
    get_stats,
    iou_score,
    mean_std,
    pearson,
    positive_rate,
)
from drywallqa.evaluation.report import (
    BoxScores,
    ClassScores,
    EvalMetadata,
    EvalReport,
    Example,
    ImageRecord,
    ParaphraseScores,
    ThresholdSweep,
    WrongPromptScores,
)
from drywallqa.evaluation.targets import TargetKind, resolve_target_kinds, truth_mask
from drywallqa.processing import prompt_threshold

#: Candidate thresholds of a sweep: 0.05, 0.10, ..., 0.95.
SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
#: Longest side of the thumbnails kept for the best/worst grid (bounds the report's memory).
THUMBNAIL_SIDE = 320


def evaluate(
    predictor,
    datasets: AnnotatedDataset | Sequence[AnnotatedDataset],
    *,
    split: str = "valid",
    prompt_config: PromptConfig | None = None,
    threshold: float | None = None,
    sweep_split: str | None = None,
    batch_size: int = 8,
    max_images: int | None = None,
    progress: bool = True,
    truth: str | Mapping[str, str] = "auto",
    zero_division: float = 1.0,
    box_iou_threshold: float = 0.5,
    examples: int = 4,
    sweep_thresholds: Sequence[float] = SWEEP_THRESHOLDS,
) -> EvalReport:
    """Score a predictor on one split of annotated datasets, per prompt class.

    A class is evaluated when it has at least one annotation in ``split``; its images are all
    images of that split in the datasets that annotate the class (images without one of its
    annotations are negatives: empty truth).

    Args:
        predictor: A :class:`~drywallqa.inference.Predictor` (anything with ``predict_batch`` and
            a ``name``).
        datasets: One dataset or several (e.g. ``cracks`` and ``drywall-join``).
        split: The split to report (``val``/``validation`` mean ``valid``).
        prompt_config: Canonical prompts and held-out paraphrases; the built-in config by default.
        threshold: Probability threshold of the reported masks (foreground when ``p >= threshold``)
            for every class when no sweep is asked for; None (the default) uses the predictor's
            own threshold of each prompt (a model's calibrated per-class thresholds, see
            :func:`drywallqa.evaluation.calibrate_thresholds`). Where it differs from the
            predictor's, the predictor's probabilities are thresholded here.
        sweep_split: Choose the threshold on this split instead (the one of ``sweep_thresholds``
            with the highest per-image mean IoU, averaged over classes), then report ``split`` at
            it. Must differ from ``split``: a threshold tuned on the reported images flatters them.
            Needs a predictor that returns probabilities.
        batch_size: Images per ``predict_batch`` call.
        max_images: Evaluate at most this many images per class (the first ones, in dataset order),
            for quick checks; the sweep uses the same cap.
        progress: Show a progress bar on stderr.
        truth: ``"auto"``, ``"mask"``, ``"box"`` or ``{class: kind}``; see
            :func:`drywallqa.evaluation.targets.resolve_target_kinds`.
        zero_division: Score of an image whose truth and prediction are both empty.
        box_iou_threshold: Box IoU for a box-level match.
        examples: Best and worst images kept per class (as thumbnails) for the example grid.
        sweep_thresholds: Candidate thresholds of the sweep.

    Returns:
        The :class:`~drywallqa.evaluation.report.EvalReport`.

    Raises:
        DataError: If no dataset has the split, or no class is annotated in it.
        ConfigError: For invalid options, or a sweep/threshold with a predictor that gives no
            probabilities.
    """
    datasets = [datasets] if isinstance(datasets, AnnotatedDataset) else list(datasets)
    if not datasets:
        raise ConfigError("evaluate() needs at least one dataset")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ConfigError(f"max_images must be >= 1 or None, got {max_images}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be a probability in [0, 1], got {threshold}")
    prompt_config = prompt_config or PromptConfig.default()
    split = canonical_split(split)
    name = str(getattr(predictor, "name", type(predictor).__name__))

    samples_by_class = class_samples(datasets, split, max_images=max_images)
    kinds = resolve_target_kinds(truth, samples_by_class)
    prompts = {cls: prompt_config.resolve(cls) for cls in samples_by_class}
    notes: list[str] = []

    sweep = None
    sweep_samples: dict[str, list[Sample]] = {}
    if sweep_split is not None:
        sweep_split = canonical_split(sweep_split)
        if sweep_split == split:
            raise ConfigError(
                f"the threshold sweep split must differ from the reported split ({split!r}): choose it on another "
                "split, e.g. a validation split carved from train by source group (drywallqa.data.splitting.group_split)"
            )
        sweep_samples = class_samples(datasets, sweep_split, max_images=max_images, classes=list(samples_by_class))
        missing = sorted(set(samples_by_class) - set(sweep_samples))
        if missing:
            notes.append(f"classes {missing} have no images in {sweep_split!r}: the threshold was chosen without them")
        shared = _shared_groups(sweep_samples, samples_by_class)
        if shared:
            notes.append(
                f"{shared} source group(s) have images in both {sweep_split!r} (threshold choice) and {split!r} "
                "(reported): the threshold has seen near-duplicates of reported images"
            )
    total = sum(len(s) for s in sweep_samples.values()) + sum(
        len(samples) * (len(samples_by_class) + len(prompts[cls].heldout)) for cls, samples in samples_by_class.items()
    )

    with _progress_bar(progress, total, f"evaluating {name}") as advance:
        if sweep_split is not None:
            sweep = _sweep_threshold(
                predictor, sweep_samples, sweep_split, kinds, prompts, sweep_thresholds, batch_size, zero_division, advance
            )
            threshold = sweep.chosen
        class_thresholds = {
            cls: threshold if threshold is not None else prompt_threshold(predictor, prompts[cls].prompt) for cls in prompts
        }
        if threshold is None and not getattr(predictor, "thresholds", None):
            threshold = prompt_threshold(predictor, "")  # one threshold for every class: report it as fixed
        scorer = _Scorer(predictor, name, class_thresholds, prompt_config, zero_division, box_iou_threshold)
        classes: dict[str, ClassScores] = {}
        records: list[ImageRecord] = []
        kept: dict[str, dict[str, list[Example]]] = {}
        for cls, samples in samples_by_class.items():
            scores, class_records, class_examples = _evaluate_class(
                scorer, cls, samples, kinds, prompts, batch_size, examples, advance
            )
            classes[cls] = scores
            records += class_records
            kept[cls] = class_examples

    for cls, prompt_class in prompts.items():
        if not prompt_class.heldout:
            notes.append(f"class {cls!r} has no held-out paraphrases in the prompt config: robustness not measured")
    metadata = EvalMetadata(
        predictor=name,
        split=split,
        datasets=sorted({s.dataset for samples in samples_by_class.values() for s in samples}),
        images=len({str(s.image_path) for samples in samples_by_class.values() for s in samples}),
        threshold=float(threshold) if threshold is not None else class_thresholds,
        threshold_source="sweep" if sweep else "fixed" if threshold is not None else "model",
        threshold_split=sweep_split if sweep else None,
        zero_division=float(zero_division),
        box_iou_threshold=float(box_iou_threshold),
        max_images=max_images,
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=_version(),
        predictor_info=dict(getattr(predictor, "metadata", {}) or {}),
    )
    return EvalReport(metadata, classes, records, sweep, notes, kept)


def class_samples(
    datasets: Sequence[AnnotatedDataset],
    split: str,
    *,
    max_images: int | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, list[Sample]]:
    """The images to score per prompt class in one split.

    A dataset's images serve every class in its ``class_names`` (an image without that class's
    annotations is a negative). Without ``classes``, only classes with at least one annotation in
    the split are returned.

    Args:
        datasets: The datasets.
        split: Canonical split name.
        max_images: Keep the first ``max_images`` images per class.
        classes: Restrict to these classes (for the sweep: the reported split's classes).

    Raises:
        DataError: If no dataset has the split, or no class has images in it.
    """
    split = canonical_split(split)
    present = [ds.split(split) for ds in datasets if split in ds.splits]
    if not present:
        have = {ds.name: sorted(ds.splits) for ds in datasets}
        raise DataError(f"no dataset has split {split!r}; splits per dataset: {have}")
    annotated = {c for ds in present for s in ds for c in s.classes}
    out: dict[str, list[Sample]] = {}
    for ds in present:
        for cls in ds.class_names:
            if (classes is None and cls in annotated) or (classes is not None and cls in classes):
                out.setdefault(cls, []).extend(ds.samples)
    if max_images is not None:
        out = {cls: samples[:max_images] for cls, samples in out.items()}
    out = {cls: samples for cls, samples in sorted(out.items()) if samples}
    if not out:
        raise DataError(
            f"split {split!r} of {[ds.name for ds in present]} has no images of "
            + (f"classes {list(classes)}" if classes is not None else "any annotated class")
        )
    return out


# -- prediction -------------------------------------------------------------------------------------
@dataclass
class _Scorer:
    """Runs the predictor on a batch and returns binary masks at the evaluation threshold."""

    predictor: object
    name: str
    thresholds: dict[str, float]
    prompt_config: PromptConfig
    zero_division: float
    box_iou_threshold: float

    def predict(self, images: list[np.ndarray], prompt: str) -> list[tuple[np.ndarray, float]]:
        """``[(mask (H, W) bool, confidence)]`` for ``images`` with one prompt, at its class's threshold."""
        own = prompt_threshold(self.predictor, prompt)
        prompt_class = self.prompt_config.class_of_prompt(prompt)
        threshold = self.thresholds.get(prompt_class.name, own) if prompt_class else own
        need_probabilities = not math.isclose(threshold, own)
        results = _predict_checked(self.predictor, self.name, images, prompt, need_probabilities)
        if need_probabilities:
            return [(r.probabilities >= threshold, float(r.confidence)) for r in results]
        return [(np.asarray(r.mask, dtype=bool), float(r.confidence)) for r in results]



def _predict_checked(predictor, name: str, images: list[np.ndarray], prompt: str, probabilities: bool) -> list:
    results = predictor.predict_batch(images, [prompt] * len(images), return_probabilities=probabilities)
    if len(results) != len(images):
        raise DrywallQAError(f"predictor {name!r} returned {len(results)} results for {len(images)} images")
    for image, result in zip(images, results):
        if result.mask.shape != image.shape[:2]:
            raise DrywallQAError(
                f"predictor {name!r} returned a {result.mask.shape} mask for a {image.shape[:2]} image; "
                "predictors must upsample to the input size"
            )
        if probabilities and result.probabilities is None:
            raise ConfigError(
                f"predictor {name!r} returned no probabilities: a threshold sweep or a threshold other than the "
                "predictor's own needs return_probabilities=True support; evaluate at the predictor's threshold instead"
            )
    return results


def _chunks(samples: list[Sample], size: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


# -- one class ----------------------------------------------------------------------------------------
@dataclass
class _Extremes:
    """Keeps the ``k`` best and ``k`` worst images by IoU, building thumbnails only for those."""

    k: int
    best: list = field(default_factory=list)   # min-heap of ((iou, -seq), example)
    worst: list = field(default_factory=list)  # min-heap of ((-iou, -seq), example)
    seq: int = 0

    def offer(self, score: float, make: Callable[[], Example]) -> None:
        # Keys carry -seq so ties keep the earlier image and payloads are never compared.
        self.seq += 1
        if self.k <= 0 or not math.isfinite(score):
            return
        keys = ((score, -self.seq), (-score, -self.seq))
        enters = [len(heap) < self.k or key > heap[0][0] for heap, key in zip((self.best, self.worst), keys)]
        if not any(enters):
            return
        example = make()
        for heap, key, enter in zip((self.best, self.worst), keys, enters):
            if enter:
                (heapq.heappush if len(heap) < self.k else heapq.heapreplace)(heap, (key, example))

    def result(self) -> dict[str, list[Example]]:
        best = [ex for _, ex in sorted(self.best, reverse=True)]
        best_ids = {id(ex) for ex in best}
        worst = [ex for _, ex in sorted(self.worst, reverse=True) if id(ex) not in best_ids]
        return {"best": best, "worst": worst}


def _thumbnail(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, record: ImageRecord) -> Example:
    import cv2

    h, w = truth.shape
    scale = min(1.0, THUMBNAIL_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # Area-averaging then "> 0" keeps one-pixel cracks visible at thumbnail size.
        truth = cv2.resize(truth.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        prediction = cv2.resize(prediction.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    return Example(record, np.ascontiguousarray(image), truth.copy(), prediction.copy())


def _stack(stats: list[PixelStats]) -> PixelStats:
    if not stats:
        empty = np.zeros(0, dtype=np.int64)
        return PixelStats(empty, empty, empty, empty)
    return PixelStats(*(np.concatenate(part) for part in zip(*stats)))


def _evaluate_class(
    scorer: _Scorer,
    cls: str,
    samples: list[Sample],
    kinds: Mapping[str, TargetKind],
    prompts: Mapping[str, PromptClass],
    batch_size: int,
    n_examples: int,
    advance: Callable[[int], None],
) -> tuple[ClassScores, list[ImageRecord], dict[str, list[Example]]]:
    zd = scorer.zero_division
    canonical = prompts[cls].prompt
    others = [(other, prompts[other].prompt) for other in prompts if other != cls]
    heldout = list(prompts[cls].heldout)

    canonical_stats: list[PixelStats] = []
    paraphrase_stats: dict[str, list[PixelStats]] = {p: [] for p in heldout}
    wrong_rates: dict[str, list[float]] = {other: [] for other, _ in others}
    box_counts = np.zeros(3, dtype=np.int64)
    records: list[ImageRecord] = []
    extremes = _Extremes(n_examples)

    for chunk in _chunks(samples, batch_size):
        images = [s.load_image() for s in chunk]
        truths = [truth_mask(s, cls, kinds[cls]) for s in chunk]
        for sample, image, truth, (mask, confidence) in zip(chunk, images, truths, scorer.predict(images, canonical)):
            stats = get_stats(mask, truth)
            canonical_stats.append(stats)
            iou = float(iou_score(*stats, reduction="none", zero_division=zd)[0])
            record = ImageRecord(
                image=str(sample.image_path), dataset=sample.dataset, class_name=cls, iou=iou,
                dice=float(dice_score(*stats, reduction="none", zero_division=zd)[0]), confidence=confidence,
                truth_pixels=int(truth.sum()), predicted_pixels=int(mask.sum()),
            )
            records.append(record)
            box_counts += box_stats_from_mask(mask, sample.boxes(cls), iou_threshold=scorer.box_iou_threshold)
            if record.truth_pixels or record.predicted_pixels:  # empty/empty teaches nothing in a grid
                extremes.offer(iou, functools.partial(_thumbnail, image, truth, mask, record))
        advance(len(chunk))

        for other, prompt in others:
            for sample, (mask, _) in zip(chunk, scorer.predict(images, prompt)):
                # The other class's own pixels in this image would be right answers, not errors.
                stats = get_stats(mask, np.zeros_like(mask), ignore=truth_mask(sample, other, kinds[other]))
                wrong_rates[other].append(float(positive_rate(*stats, reduction="none")[0]))
            advance(len(chunk))

        for prompt in heldout:
            for truth, (mask, _) in zip(truths, scorer.predict(images, prompt)):
                paraphrase_stats[prompt].append(get_stats(mask, truth))
            advance(len(chunk))

    stats = _stack(canonical_stats)
    ious = iou_score(*stats, reduction="none", zero_division=zd)
    iou_summary = mean_std(ious)
    confidences = [r.confidence for r in records]
    paraphrases = []
    for prompt in heldout:
        p_stats = _stack(paraphrase_stats[prompt])
        p_iou = mean_std(iou_score(*p_stats, reduction="none", zero_division=zd))
        paraphrases.append(ParaphraseScores(
            prompt=prompt, iou=p_iou, iou_pooled=float(iou_score(*p_stats, reduction="pooled", zero_division=zd)),
            drop=iou_summary.mean - p_iou.mean,
        ))
    all_rates = [rate for rates in wrong_rates.values() for rate in rates]
    tp, fp, fn = (int(v) for v in box_counts)
    scores = ClassScores(
        class_name=cls,
        prompt=canonical,
        target=kinds[cls],
        images=len(samples),
        empty_truth_images=sum(1 for r in records if r.truth_pixels == 0),
        iou=iou_summary,
        dice=mean_std(dice_score(*stats, reduction="none", zero_division=zd)),
        iou_pooled=float(iou_score(*stats, reduction="pooled", zero_division=zd)),
        dice_pooled=float(dice_score(*stats, reduction="pooled", zero_division=zd)),
        box=BoxScores(tp, fp, fn, **detection_scores(tp, fp, fn), iou_threshold=scorer.box_iou_threshold),
        confidence=mean_std(confidences),
        confidence_iou_pearson=pearson(confidences, ious),
        wrong_prompt_fp_rate=mean_std(all_rates),
        wrong_prompt_images_with_fp=_share_positive(all_rates),
        wrong_prompts=[
            WrongPromptScores(other, prompt, mean_std(wrong_rates[other]), _share_positive(wrong_rates[other]))
            for other, prompt in others
        ],
        paraphrases=paraphrases,
    )
    return scores, records, extremes.result()


def _share_positive(values: list[float]) -> float:
    return float(np.mean(np.asarray(values) > 0)) if values else float("nan")


# -- threshold sweep --------------------------------------------------------------------------------
def _sweep_threshold(
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
        for chunk in _chunks(samples, batch_size):
            images = [s.load_image() for s in chunk]
            results = _predict_checked(predictor, name, images, prompts[cls].prompt, probabilities=True)
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
    return round(min(tied, key=lambda t: (abs(t - 0.5), t)), 6)


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
    with _progress_bar(progress, total, f"calibrating {name}") as advance:
        return _sweep_threshold(predictor, samples_by_class, split, kinds, prompts, thresholds, batch_size,
                                zero_division, advance)


def _shared_groups(a: Mapping[str, list[Sample]], b: Mapping[str, list[Sample]]) -> int:
    groups_a = {(s.dataset, s.group) for samples in a.values() for s in samples}
    groups_b = {(s.dataset, s.group) for samples in b.values() for s in samples}
    return len(groups_a & groups_b)


# -- misc ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, description: str):
    """Yield ``advance(n)``; a rich progress bar on stderr when enabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:
        task = bar.add_task(f"{description} (image × prompt)", total=total)
        yield lambda n: bar.advance(task, n)


def _version() -> str:
    from drywallqa import __version__

    return __version__
