"""Test-time augmentation over any batched runtime: :class:`FlipTTAPredictor` and its views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.inference.core import BatchedPredictor

#: Test-time augmentation choices: the views whose logits are averaged, as flip axes of a NHWC batch.
TTA_VIEWS = {"none": (), "hflip": ((2,),), "hvflip": ((2,), (1,), (1, 2))}


class FlipTTAPredictor(BatchedPredictor):
    """Test-time augmentation over any batched runtime: average the logits of flipped views.

    Each batch runs once with the original images and once per flipped view (in one call to the
    wrapped runtime); every view's logits are flipped back and the mean logit is thresholded.
    Several prompts per image encode each view once (:meth:`encode_batch`) and decode every
    prompt on every view (:meth:`decode_batch`).
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

    def __getattr__(self, name: str) -> Any:
        # Everything else (metadata, device, model...) is the wrapped runtime's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def forward_batch(self, images: np.ndarray, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        mask_logits, confidence_logits = self.inner.forward_batch(self._views(images), list(prompts) * self._count)
        return self._average(mask_logits, confidence_logits, len(images))

    def encode_batch(self, images: np.ndarray) -> Any:
        """The wrapped runtime's features of every view of the ``N`` images (``V * N`` rows, view by view)."""
        return self.inner.encode_batch(self._views(images)), len(images)

    def decode_batch(self, features: Any, prompts: Sequence[str], image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair decoded on each view of its image (one call to the wrapped runtime), flipped back, averaged."""
        view_features, n = features
        index = np.asarray(image_index, dtype=np.int64)
        views_index = np.concatenate([index + view * n for view in range(self._count)])
        mask_logits, confidence_logits = self.inner.decode_batch(view_features, list(prompts) * self._count, views_index)
        return self._average(mask_logits, confidence_logits, len(index))

    @property
    def _count(self) -> int:
        return 1 + len(TTA_VIEWS[self.views])

    def _views(self, images: np.ndarray) -> np.ndarray:
        """The images, then each flipped view of them, as one batch."""
        views = [images] + [np.flip(images, axis=axes) for axes in TTA_VIEWS[self.views]]
        return np.ascontiguousarray(np.concatenate(views))

    def _average(self, mask_logits: np.ndarray, confidence_logits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The mean of the views' outputs (``V * n`` rows, view by view), each view's logits flipped back."""
        # Mask logits are (B, S, S): a NHWC flip axis (1 = rows, 2 = columns) maps to the same axis.
        total = mask_logits[:n].astype(np.float32, copy=True)
        for index, axes in enumerate(TTA_VIEWS[self.views], start=1):
            total += np.flip(mask_logits[index * n : (index + 1) * n], axis=axes)
        return total / self._count, confidence_logits.reshape(self._count, n).mean(axis=0)

