"""Turning one :class:`TrainRecord` into pixels: read, target, augment, resize.

Shared by the torch dataset (on the fly) and :func:`drywallqa.trainsets.materialize` (rendered
once), so an augmented copy written to disk equals the item the dataset yields for it at epoch 0
in deterministic mode (before resizing).

Resize policy: **plain resize** to ``size x size``. All the shipped images are 640x640, so plain
resizing never changes the aspect ratio and, unlike letterboxing, wastes no input pixels on
padding. Images that are not square are stretched; a predictor must resize the same way.
Images use ``INTER_AREA`` when shrinking and ``INTER_LINEAR`` when enlarging; masks use
``INTER_NEAREST`` so they stay binary.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import cv2
import numpy as np

from drywallqa.errors import DataError
from drywallqa.trainsets.augment import augment_pair

if TYPE_CHECKING:
    from drywallqa.trainsets.core import TrainRecord, TrainSet


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as RGB ``uint8`` ``(H, W, 3)`` with OpenCV (the fast path for training)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: image file missing or unreadable")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def item_seeds(seed: int, epoch: int, index: int) -> tuple[int, int]:
    """Independent ``(augmentation, prompt)`` seeds for one item in one epoch."""
    aug, prompt = np.random.SeedSequence([seed, epoch, index]).generate_state(2)
    return int(aug), int(prompt)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-resize an image and its mask to ``size x size`` (see the module docstring).

    Args:
        image: ``(H, W, 3)`` ``uint8``.
        mask: ``(H, W)`` bool.
        size: Output side in pixels.

    Returns:
        ``(size, size, 3)`` ``uint8`` and ``(size, size)`` bool.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, mask
    interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    image = cv2.resize(image, (size, size), interpolation=interpolation)
    mask = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    return image, mask


def render_record(
    trainset: TrainSet, record: TrainRecord, pipeline=None, aug_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Image and target of a record at the image's own size, augmented when ``pipeline`` is given.

    Args:
        trainset: The set the record belongs to (reads targets).
        record: The item.
        pipeline: Augmentation pipeline, or None for no augmentation.
        aug_seed: Seed of the augmentation (None: fresh randomness).

    Returns:
        RGB ``uint8`` ``(H, W, 3)`` and bool ``(H, W)``.
    """
    image = trainset.load_image(record)
    if record.sample is not None and image.shape[:2] != (record.sample.height, record.sample.width):
        raise DataError(
            f"{record.image}: image is {image.shape[1]}x{image.shape[0]} but its annotation says "
            f"{record.sample.width}x{record.sample.height}"
        )
    mask = trainset.load_target(record)
    if pipeline is not None:
        image, mask = augment_pair(pipeline, image, mask, aug_seed)
    return image, mask
