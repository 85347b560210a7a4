"""The training augmentation: an albumentations pipeline built from :class:`AugmentationConfig`.

Image and mask move together through every geometric transform (flips, 90° and small-angle
rotation, affine); pixel transforms (brightness/contrast, noise, blur) change the image only;
coarse dropout blanks image patches and clears the target under them. Geometric transforms
reflect the image at the border instead of padding with black, and the mask is reflected the same
way, so no artificial edges appear that a model could mistake for a joint.

The pipeline round-trips through :func:`augmentation_to_dict` / :func:`augmentation_from_dict`
(albumentations' own ``A.to_dict`` / ``A.from_dict``) so it can be saved with each checkpoint.

Training with its data on a GPU (``trainer.data_on_device``) applies the same config to whole
batches on the device instead: :class:`drywallqa.trainsets.device_augment.BatchAugmenter`, whose
tests check that it draws what this pipeline draws.
"""

from __future__ import annotations

import random

import cv2
import numpy as np

from drywallqa.trainsets.config import AugmentationConfig


def _albumentations():
    try:
        import albumentations as A
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from drywallqa.errors import ConfigError

        raise ConfigError("training-set augmentation needs albumentations: pip install 'albumentations>=2'") from exc
    return A


def build_augmentation(config: AugmentationConfig | None = None):
    """Build the albumentations pipeline for training items.

    Args:
        config: Parameters; the defaults if None. Transforms with probability 0 are left out.

    Returns:
        ``A.Compose``; call it as ``pipeline(image=rgb_uint8_hwc, mask=uint8_hw)``.

    Example:
        >>> pipeline = build_augmentation(AugmentationConfig(hflip_p=1.0, vflip_p=0, rotate90_p=0,
        ...     rotate_p=0, affine_p=0, brightness_contrast_p=0, noise_p=0, blur_p=0, dropout_p=0))
        >>> [type(t).__name__ for t in pipeline.transforms]
        ['HorizontalFlip']
    """
    A = _albumentations()
    c = config or AugmentationConfig()
    border = {"border_mode": cv2.BORDER_REFLECT_101}
    candidates = [
        (c.hflip_p, lambda p: A.HorizontalFlip(p=p)),
        (c.vflip_p, lambda p: A.VerticalFlip(p=p)),
        (c.rotate90_p, lambda p: A.RandomRotate90(p=p)),
        (c.rotate_p, lambda p: A.Rotate(limit=(-c.rotate_limit, c.rotate_limit), **border, p=p)),
        (
            c.affine_p,
            lambda p: A.Affine(
                scale=c.scale_range, translate_percent=c.translate_range, shear=c.shear_range, **border, p=p
            ),
        ),
        (
            c.brightness_contrast_p,
            lambda p: A.RandomBrightnessContrast(
                brightness_limit=c.brightness_limit, contrast_limit=c.contrast_limit, p=p
            ),
        ),
        (c.noise_p, lambda p: A.GaussNoise(std_range=c.noise_std_range, p=p)),
        (c.blur_p, lambda p: A.GaussianBlur(blur_limit=c.blur_limit, p=p)),
        (
            c.dropout_p,
            lambda p: A.CoarseDropout(
                num_holes_range=c.dropout_holes_range, hole_height_range=c.dropout_size_range,
                hole_width_range=c.dropout_size_range, fill=0, fill_mask=0, p=p,
            ),
        ),
    ]
    return A.Compose([make(p) for p, make in candidates if p > 0])


def augmentation_to_dict(pipeline) -> dict:
    """JSON-ready description of a pipeline (``A.to_dict``), e.g. to store in a checkpoint."""
    return _albumentations().to_dict(pipeline)


def augmentation_from_dict(data: dict):
    """Rebuild a pipeline saved with :func:`augmentation_to_dict`."""
    return _albumentations().from_dict(data)


def augment_pair(pipeline, image: np.ndarray, mask: np.ndarray, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Augment an image and its mask together.

    Args:
        pipeline: From :func:`build_augmentation`.
        image: RGB ``uint8`` ``(H, W, 3)``.
        mask: ``(H, W)`` bool or ``{0, 1}`` integers.
        seed: Seed of this call; the same seed always gives the same result. None draws fresh.

    Returns:
        ``(image, mask)``: RGB ``uint8`` ``(H, W, 3)`` and bool ``(H, W)``.
    """
    # One generator shared by every transform: albumentations' set_random_seed would give each
    # transform its own copy of the same seed, so e.g. both flips would always fire together.
    seed = int(np.random.SeedSequence(seed).generate_state(1)[0]) if seed is None else int(seed)
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    out = pipeline(image=image, mask=mask.astype(np.uint8))
    return out["image"], out["mask"].astype(bool)
