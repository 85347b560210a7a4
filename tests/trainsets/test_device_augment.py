"""The on-device batch augmentation: image and mask move alike, and every transform draws what
the albumentations pipeline of the same config draws (compared statistically on the CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drywallqa.trainsets import AugmentationConfig, augment_pair, build_augmentation
from drywallqa.trainsets.device_augment import BatchAugmenter

ALL_OFF = {f.name: 0.0 for f in dataclasses.fields(AugmentationConfig) if f.name.endswith("_p")}
SIDE = 48
ITEMS = 600


def only(**values) -> AugmentationConfig:
    return AugmentationConfig(**{**ALL_OFF, **values})


def coordinate_image(side: int = SIDE) -> np.ndarray:
    """RGB uint8 whose red channel is the column and green the row (blue constant): where every
    output pixel came from can be read off the output."""
    ramp = np.round(np.linspace(0, 255, side)).astype(np.uint8)
    image = np.empty((side, side, 3), np.uint8)
    image[..., 0] = ramp[None, :]
    image[..., 1] = ramp[:, None]
    image[..., 2] = 128
    return image


def threshold_mask(image: np.ndarray) -> np.ndarray:
    """A mask that is a threshold of the image (an oblique region touching two borders)."""
    return image[..., 0].astype(int) + image[..., 1] // 2 > 200


def device_outputs(config: AugmentationConfig, image: np.ndarray, mask: np.ndarray, items: int = ITEMS, seed: int = 0):
    """``items`` augmentations on the device path: float images (N, H, W, 3) in [0, 1] and masks (N, H, W)."""
    images = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(items, 1, 1, 1).contiguous()
    masks = torch.from_numpy(mask.astype(np.uint8))[None, None].repeat(items, 1, 1, 1)
    out_images, out_masks = BatchAugmenter(config)(images, masks, generator=torch.Generator().manual_seed(seed))
    return out_images.permute(0, 2, 3, 1).numpy(), out_masks[:, 0].numpy()


def album_outputs(config: AugmentationConfig, image: np.ndarray, mask: np.ndarray, items: int = ITEMS):
    """The same on the albumentations path, as floats in [0, 1]."""
    pipeline = build_augmentation(config)
    pairs = [augment_pair(pipeline, image, mask, seed=i) for i in range(items)]
    return np.stack([p[0] for p in pairs]).astype(np.float32) / 255.0, np.stack([p[1] for p in pairs]).astype(np.float32)


@pytest.mark.parametrize("config", [
    only(hflip_p=1.0), only(vflip_p=1.0), only(rotate90_p=1.0), only(rotate_p=1.0), only(affine_p=1.0),
    only(hflip_p=0.5, vflip_p=0.5, rotate90_p=0.5, rotate_p=0.5, affine_p=0.5),
], ids=["hflip", "vflip", "rotate90", "rotate", "affine", "all-geometric"])
def test_each_geometric_transform_moves_image_and_mask_alike(config):
    image = coordinate_image()
    images, masks = device_outputs(config, image, threshold_mask(image), items=64)
    # The mask is the same threshold of the moved image, but at the few pixels where bilinear
    # interpolation straddles the threshold's edge.
    moved = threshold_mask(np.round(images * 255).astype(np.uint8))
    disagree = (moved != masks.astype(bool)).mean(axis=(1, 2))
    assert disagree.max() < 0.03
    assert set(np.unique(masks)) <= {0.0, 1.0}


def test_flips_and_quarter_turns_are_exact():
    image = coordinate_image()
    images, masks = device_outputs(only(hflip_p=1.0, rotate90_p=1.0), image, threshold_mask(image), items=32)
    candidates = [np.rot90(image[:, ::-1], k) for k in range(4)]
    for out, out_mask in zip(np.round(images * 255).astype(np.uint8), masks):
        k = next(k for k, c in enumerate(candidates) if np.array_equal(c, out))
        assert np.array_equal(out_mask.astype(bool), np.rot90(threshold_mask(image)[:, ::-1], k))


def test_pixel_transforms_leave_the_mask_and_inactive_items_alone():
    image = coordinate_image()
    mask = threshold_mask(image)
    config = only(brightness_contrast_p=1.0, noise_p=1.0, blur_p=1.0)
    images = torch.from_numpy(image).permute(2, 0, 1)[None].repeat(8, 1, 1, 1)
    masks = torch.from_numpy(mask.astype(np.uint8))[None, None].repeat(8, 1, 1, 1)
    active = torch.tensor([True, False] * 4)
    out, out_masks = BatchAugmenter(config)(images, masks, active=active, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out_masks, masks.float())
    assert torch.equal(out[~active], images[~active].float() / 255.0)
    assert (out[active] - images[active].float() / 255.0).abs().amax(dim=(1, 2, 3)).min() > 0.01


def test_dropout_clears_the_target_under_its_holes():
    image = np.full((SIDE, SIDE, 3), 200, np.uint8)
    config = only(dropout_p=1.0)
    images, masks = device_outputs(config, image, np.ones((SIDE, SIDE), bool), items=32)
    holes = images[..., 0] == 0
    assert holes.any(axis=(1, 2)).all() and np.array_equal(~holes, masks.astype(bool))


def test_a_seeded_generator_repeats_the_draws():
    image = coordinate_image()
    a = device_outputs(AugmentationConfig(), image, threshold_mask(image), items=16, seed=3)
    b = device_outputs(AugmentationConfig(), image, threshold_mask(image), items=16, seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# -- the same distributions as albumentations ---------------------------------------------------
def _orientation(output: np.ndarray) -> int:
    """Which of the 8 flips/quarter turns of :func:`coordinate_image` ``output`` is (0-7)."""
    corner_x, corner_y = output[0, 0, 0] > 0.5, output[0, 0, 1] > 0.5
    x_along_rows = abs(output[0, -1, 0] - output[0, 0, 0]) < abs(output[-1, 0, 0] - output[0, 0, 0])
    return int(corner_x) + 2 * int(corner_y) + 4 * int(x_along_rows)


def _linear_fit(output: np.ndarray) -> np.ndarray:
    """The 2x3 map from output pixel to the input pixel it shows, fitted on the central half."""
    side = output.shape[0]
    lo, hi = side // 4, 3 * side // 4
    rows, cols = np.mgrid[lo:hi, lo:hi]
    design = np.stack([cols.ravel(), rows.ravel(), np.ones(cols.size)], axis=1)
    source = output[lo:hi, lo:hi, :2].reshape(-1, 2) * (side - 1)
    solution, *_ = np.linalg.lstsq(design, source, rcond=None)
    return solution.T


def _histogram(values: list[int], bins: int) -> np.ndarray:
    return np.bincount(values, minlength=bins) / len(values)


def test_flip_and_quarter_turn_rates_match_albumentations():
    image = coordinate_image()
    config = only(hflip_p=0.5, vflip_p=0.5, rotate90_p=0.5)
    ours = _histogram([_orientation(o) for o in device_outputs(config, image, threshold_mask(image))[0]], 8)
    theirs = _histogram([_orientation(o) for o in album_outputs(config, image, threshold_mask(image))[0]], 8)
    assert 0.5 * np.abs(ours - theirs).sum() < 0.08  # total variation; sampling noise is about 0.04


@pytest.mark.parametrize("config", [only(rotate_p=1.0), only(affine_p=1.0), only(rotate_p=0.3, affine_p=0.3)],
                         ids=["rotate", "affine", "both"])
def test_rotation_and_affine_parameters_match_albumentations(config):
    image = coordinate_image()

    def summary(outputs):
        fits = np.stack([_linear_fit(o) for o in outputs])
        angle = np.degrees(np.arctan2(fits[:, 1, 0] - fits[:, 0, 1], fits[:, 0, 0] + fits[:, 1, 1]))
        area = np.abs(np.linalg.det(fits[:, :, :2]))
        shift = fits[:, :, 2] + fits[:, :, :2] @ np.array([(SIDE - 1) / 2] * 2) - (SIDE - 1) / 2
        return angle, area, shift

    ours = summary(device_outputs(config, image, threshold_mask(image), items=400)[0])
    theirs = summary(album_outputs(config, image, threshold_mask(image), items=400)[0])
    for a, b, spread in zip(ours, theirs, (1.2, 0.012, 0.5)):
        assert abs(a.mean() - b.mean()) < spread and abs(a.std() - b.std()) < spread
    assert np.abs(ours[0]).max() < 15.5 + 0.5


def test_pixel_transform_statistics_match_albumentations():
    rng = np.random.default_rng(0)
    image = rng.integers(80, 176, (SIDE, SIDE, 3), dtype=np.uint8)
    mask = np.zeros((SIDE, SIDE), bool)
    base = image.astype(np.float32) / 255.0
    checks = {
        "brightness": (only(brightness_contrast_p=0.5), lambda out: out.mean(axis=(1, 2, 3)) - base.mean(), 0.012),
        "contrast": (only(brightness_contrast_p=0.5), lambda out: out.std(axis=(1, 2, 3)) / base.std(), 0.025),
        "noise": (only(noise_p=0.2), lambda out: (out - base).std(axis=(1, 2, 3)), 0.003),
        "blur": (only(blur_p=0.1), lambda out: np.abs(np.diff(out, axis=2)).mean(axis=(1, 2, 3)), 0.004),
        "dropout": (only(dropout_p=0.2), lambda out: (out[..., 0] == 0).mean(axis=(1, 2)), 0.006),
    }
    for name, (config, statistic, tolerance) in checks.items():
        ours = statistic(device_outputs(config, image, mask)[0])
        theirs = statistic(album_outputs(config, image, mask)[0])
        assert abs(ours.mean() - theirs.mean()) < tolerance, (name, ours.mean(), theirs.mean())
        assert abs(ours.std() - theirs.std()) < 2 * tolerance, (name, ours.std(), theirs.std())
        changed = lambda values: (np.abs(values - np.median(values)) > 1e-3).mean()  # noqa: E731
        assert abs(changed(ours) - changed(theirs)) < 0.08, name
