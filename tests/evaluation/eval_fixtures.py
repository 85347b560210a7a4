"""Synthetic datasets and fake predictors for the evaluation tests.

Fake predictors find the :class:`Sample` behind an image by the hash of its pixels, so they can
answer from the annotations (a perfect model) without any model code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from drywallqa.data import AnnotatedDataset, PromptConfig, Sample
from drywallqa.inference import Predictor, SegmentationResult

PROMPTS = PromptConfig.default()


@pytest.fixture(scope="module", name="synthetic")
def synthetic_fixture(tmp_path_factory) -> list[AnnotatedDataset]:
    """Fixture ``synthetic``: ``[cracks, drywall-join]`` rendered at 64 px (crack polygons/RLE,
    box-only joints). 32 images give annotated images of both classes in ``valid`` and ``train``.

    Test modules import ``synthetic_fixture``; pytest finds it under its ``name``.
    """
    from drywallqa.data.synthetic import generate_sample_data

    paths = generate_sample_data(tmp_path_factory.mktemp("sample-data"), images=32, seed=0, size=64)
    return [AnnotatedDataset.load(paths.cracks), AnnotatedDataset.load(paths.drywall_join)]


def image_key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def true_target(sample: Sample, class_name: str) -> np.ndarray:
    """What a perfect model outputs, written independently of drywallqa.evaluation.targets:
    crack polygons, taping-area filled boxes."""
    return sample.mask(class_name) if class_name == "crack" else sample.box_mask(class_name)


class LookupPredictor(Predictor):
    """Answers ``probabilities_fn(sample, prompt_class, image)`` for the sample behind each image.

    Args:
        datasets: Datasets whose images it will be asked about.
        probabilities_fn: ``(sample, class_name or None, image) -> (H, W) float32`` in [0, 1].
        confidence_fn: ``(sample, class_name) -> float``; 1.0 by default.
    """

    def __init__(
        self,
        datasets: list[AnnotatedDataset],
        probabilities_fn: Callable[[Sample, str | None, np.ndarray], np.ndarray],
        confidence_fn: Callable[[Sample, str | None], float] | None = None,
        name: str = "lookup",
        gives_probabilities: bool = True,
    ):
        self.samples = {image_key(s.load_image()): s for ds in datasets for s in ds}
        self.probabilities_fn = probabilities_fn
        self.confidence_fn = confidence_fn or (lambda sample, cls: 1.0)
        self.name = name
        self.gives_probabilities = gives_probabilities
        self.calls: list[tuple[int, str, bool]] = []

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        results = []
        for image, prompt in zip(images, prompts):
            self.calls.append((len(images), prompt, return_probabilities))
            sample = self.samples[image_key(image)]
            prompt_class = PROMPTS.class_of(prompt)
            cls = prompt_class.name if prompt_class else None
            probs = self.probabilities_fn(sample, cls, image).astype(np.float32)
            results.append(SegmentationResult(
                prompt=prompt, mask=probs >= self.threshold, confidence=float(self.confidence_fn(sample, cls)),
                probabilities=probs if return_probabilities and self.gives_probabilities else None,
                threshold=self.threshold,
            ))
        return results


def perfect(sample: Sample, cls: str | None, image: np.ndarray) -> np.ndarray:
    """The prompt's class truth in this image; empty for a class the image's dataset lacks."""
    if cls is None or cls not in sample.classes:
        return np.zeros((sample.height, sample.width), dtype=np.float32)
    return true_target(sample, cls).astype(np.float32)


def empty(sample: Sample, cls: str | None, image: np.ndarray) -> np.ndarray:
    return np.zeros((sample.height, sample.width), dtype=np.float32)


def full(sample: Sample, cls: str | None, image: np.ndarray) -> np.ndarray:
    return np.ones((sample.height, sample.width), dtype=np.float32)


def shifted(sample: Sample, cls: str | None, image: np.ndarray) -> np.ndarray:
    """The truth moved by a per-image offset: IoU varies from image to image."""
    truth = perfect(sample, cls, image)
    offset = int(image_key(image)[:2], 16) % 9
    return np.roll(truth, (offset, offset // 2), axis=(0, 1))
