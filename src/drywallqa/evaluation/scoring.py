"""Scoring one prompt class for :func:`drywallqa.evaluation.evaluate`.

:func:`class_samples` picks the images to score per class; :class:`Scorer` runs a predictor on
a batch at each class's threshold; :func:`evaluate_class` scores one class with its canonical
prompt, every other class's prompt (prompt fidelity) and its held-out paraphrases, and keeps
thumbnails of the best and worst images only.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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
    Example,
    ImageRecord,
    ParaphraseScores,
    WrongPromptScores,
)
from drywallqa.evaluation.targets import TargetKind, truth_mask
from drywallqa.processing import foreground, prompt_threshold

#: Longest side of the thumbnails kept for the best/worst grid (bounds the report's memory).
THUMBNAIL_SIDE = 320


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
class Scorer:
    """Runs the predictor on a batch and returns binary masks at the evaluation threshold."""

    predictor: object
    name: str
    thresholds: dict[str, float]
    prompt_config: PromptConfig
    zero_division: float
    box_iou_threshold: float

    def predict(self, images: list[np.ndarray], prompts: Sequence[str]) -> dict[str, list[tuple[np.ndarray, float]]]:
        """Per prompt, ``[(mask (H, W) bool, confidence)]`` for ``images``, at its class's threshold.

        A predictor with ``predict_many`` gets every prompt in one call (each image encoded once
        for all of them); any other gets one ``predict_batch`` call per prompt.
        """
        thresholds, need = {}, {}
        for prompt in dict.fromkeys(prompts):
            own = prompt_threshold(self.predictor, prompt)
            prompt_class = self.prompt_config.class_of(prompt)
            thresholds[prompt] = self.thresholds.get(prompt_class.name, own) if prompt_class else own
            need[prompt] = not math.isclose(thresholds[prompt], own)
        if hasattr(self.predictor, "predict_many"):
            per_image = predict_many_checked(self.predictor, self.name, images, list(need), any(need.values()))
            by_prompt = {prompt: [own[k] for own in per_image] for k, prompt in enumerate(need)}
        else:
            by_prompt = {prompt: predict_checked(self.predictor, self.name, images, prompt, need[prompt]) for prompt in need}
        return {prompt: [(foreground(r.probabilities, thresholds[prompt]) if need[prompt] else np.asarray(r.mask, dtype=bool),
                          float(r.confidence)) for r in results]
                for prompt, results in by_prompt.items()}


def predict_many_checked(predictor, name: str, images: list[np.ndarray], prompts: list[str], probabilities: bool) -> list:
    """``predictor.predict_many`` of every image with every prompt, each result checked as :func:`predict_checked` does."""
    per_image = predictor.predict_many(images, prompts, return_probabilities=probabilities)
    if len(per_image) != len(images) or any(len(own) != len(prompts) for own in per_image):
        raise DrywallQAError(f"predictor {name!r} did not return one result per image and prompt")
    for k in range(len(prompts)):
        _check_results(name, images, [own[k] for own in per_image], probabilities)
    return per_image


def predict_checked(predictor, name: str, images: list[np.ndarray], prompt: str, probabilities: bool) -> list:
    results = predictor.predict_batch(images, [prompt] * len(images), return_probabilities=probabilities)
    return _check_results(name, images, results, probabilities)


def _check_results(name: str, images: list[np.ndarray], results: list, probabilities: bool) -> list:
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


def chunks(samples: list[Sample], size: int) -> Iterator[list[Sample]]:
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


def evaluate_class(
    scorer: Scorer,
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

    for chunk in chunks(samples, batch_size):
        images = [s.load_image() for s in chunk]
        truths = [truth_mask(s, cls, kinds[cls]) for s in chunk]
        # Every prompt of the class's images in one call: a split model encodes each image once.
        predicted = scorer.predict(images, [canonical, *(prompt for _, prompt in others), *heldout])
        for sample, image, truth, (mask, confidence) in zip(chunk, images, truths, predicted[canonical]):
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
            for sample, (mask, _) in zip(chunk, predicted[prompt]):
                # The other class's own pixels in this image would be right answers, not errors.
                stats = get_stats(mask, np.zeros_like(mask), ignore=truth_mask(sample, other, kinds[other]))
                wrong_rates[other].append(float(positive_rate(*stats, reduction="none")[0]))
            advance(len(chunk))

        for prompt in heldout:
            for truth, (mask, _) in zip(truths, predicted[prompt]):
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
