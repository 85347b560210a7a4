"""Test-time augmentation over any batched runtime: :class:`FlipTTAPredictor` and its views."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference.core import BatchedPredictor

#: Test-time augmentation choices: the views whose logits are averaged, as flip axes of a NHWC batch.
TTA_VIEWS = {"none": (), "hflip": ((2,),), "hvflip": ((2,), (1,), (1, 2))}


class FlipTTAPredictor(BatchedPredictor):
    """Test-time augmentation over any batched runtime: average the logits of flipped views.

    Each batch runs once with the original images and once per flipped view (in one call to the
    wrapped runtime); every view's logits are flipped back and the mean logit is thresholded.
    ``hflip`` doubles the cost, ``hvflip`` (also vertical and both) quadruples it. Whether it
    pays is a measurement: ``drywallqa evaluate --tta hflip`` beside the same run without it.

    Args:
        inner: The runtime whose ``forward_batch`` does the work (PyTorch, ONNX Runtime, ...).
        views: A key of :data:`TTA_VIEWS`.

    Raises:
        ConfigError: For an unknown ``views`` name.
    """

    def __init__(self, inner: BatchedPredictor, views: str = "hflip"):
        if views not in TTA_VIEWS or views == "none":
            raise ConfigError(f"tta must be one of {', '.join(k for k in TTA_VIEWS if k != 'none')}, got {views!r}")
        self.inner = inner
        self.views = views
        self.image_size, self.batch_size, self.threshold = inner.image_size, inner.batch_size, inner.threshold
        self.name = f"{inner.name}+tta-{views}"

    def __getattr__(self, name: str):
        # Everything else (metadata, device, model...) is the wrapped runtime's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        flips = TTA_VIEWS[self.views]
        views = [images] + [np.flip(images, axis=axes) for axes in flips]
        mask_logits, confidence_logits = self.inner.forward_batch(
            np.ascontiguousarray(np.concatenate(views)), list(prompts) * len(views)
        )
        n = len(images)
        # Mask logits are (B, S, S): a NHWC flip axis (1 = rows, 2 = columns) maps to the same axis.
        total = mask_logits[:n].astype(np.float32, copy=True)
        for index, axes in enumerate(flips, start=1):
            total += np.flip(mask_logits[index * n : (index + 1) * n], axis=axes)
        count = len(views)
        return total / count, confidence_logits.reshape(count, n).mean(axis=0)

