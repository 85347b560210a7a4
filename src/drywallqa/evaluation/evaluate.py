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

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from drywallqa.console import progress_bar
from drywallqa.data.core import AnnotatedDataset, Sample, canonical_split
from drywallqa.data.prompts import PromptConfig
from drywallqa.errors import ConfigError
from drywallqa.evaluation.calibration import SWEEP_THRESHOLDS, sweep_threshold
from drywallqa.evaluation.leakage import TrainingGroups, training_overlap
from drywallqa.evaluation.report import ClassScores, EvalMetadata, EvalReport, Example, ImageRecord
from drywallqa.evaluation.scoring import Scorer, class_samples, evaluate_class
from drywallqa.evaluation.targets import resolve_target_kinds
from drywallqa.processing import check_threshold, prompt_threshold


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
    training: TrainingGroups | None = None,
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
        threshold: Probability threshold of the reported masks (foreground when ``p > threshold``)
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
        training: The source groups the model was trained on (e.g. from
            :func:`drywallqa.trainsets.training_groups`), to report the scored groups it has seen
            (``report.leakage``); None reports them as unknown.

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
    if threshold is not None:
        threshold = check_threshold(threshold)
    prompt_config = prompt_config or PromptConfig.default()
    if hasattr(predictor, "set_prompt_config"):  # a Predictor's calibrated per-class thresholds follow these classes
        predictor.set_prompt_config(prompt_config)
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

    with progress_bar(total, f"evaluating {name}", unit="image x prompt", enabled=progress) as bar:
        advance = bar.update
        if sweep_split is not None:
            sweep = sweep_threshold(
                predictor, sweep_samples, sweep_split, kinds, prompts, sweep_thresholds, batch_size, zero_division, advance
            )
            threshold = sweep.chosen
        class_thresholds = {
            cls: threshold if threshold is not None else prompt_threshold(predictor, prompts[cls].prompt) for cls in prompts
        }
        if threshold is None and not getattr(predictor, "thresholds", None):
            threshold = prompt_threshold(predictor, "")  # one threshold for every class: report it as fixed
        scorer = Scorer(predictor, name, class_thresholds, prompt_config, zero_division, box_iou_threshold)
        classes: dict[str, ClassScores] = {}
        records: list[ImageRecord] = []
        kept: dict[str, dict[str, list[Example]]] = {}
        for cls, samples in samples_by_class.items():
            scores, class_records, class_examples = evaluate_class(
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
    leakage = training_overlap((s for samples in samples_by_class.values() for s in samples), training)
    return EvalReport(metadata, classes, records, sweep, notes, kept, leakage)


def _shared_groups(a: Mapping[str, list[Sample]], b: Mapping[str, list[Sample]]) -> int:
    groups_a = {(s.dataset, s.group) for samples in a.values() for s in samples}
    groups_b = {(s.dataset, s.group) for samples in b.values() for s in samples}
    return len(groups_a & groups_b)


def _version() -> str:
    from drywallqa import __version__

    return __version__
