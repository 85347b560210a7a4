"""Helpers of the labelling-tool tests (importable: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from drywallqa.inference import Predictor, SegmentationResult


class DarkBars(Predictor):
    """Model-free and instant: ``segment crack`` finds the dark pixels, ``segment taping area`` the
    bright ones; the confidence is fixed per prompt so tests can check it exactly."""

    name = "dark-bars"
    confidences = {"segment crack": 0.8125, "segment taping area": 0.625}

    def __init__(self):
        self.calls = 0

    def predict_batch(self, images, prompts, *, return_probabilities=False):
        self.calls += 1
        results = []
        for image, prompt in zip(images, prompts):
            grey = image.mean(axis=2)
            mask = grey < 60 if prompt == "segment crack" else grey > 240
            results.append(SegmentationResult(prompt=prompt, mask=mask, confidence=self.confidences.get(prompt, 0.5)))
        return results


def bar_photo(height: int = 60, width: int = 90) -> np.ndarray:
    """Grey wall, a dark 3 x 70 bar (the "crack") and two bright 8 x 8 squares (the "tape")."""
    image = np.full((height, width, 3), 150, dtype=np.uint8)
    image[20:23, 10:80] = 10
    image[40:48, 5:13] = 250
    image[40:48, 60:68] = 250
    return image
