"""The augmentation pipeline: image and mask move together, built from config, serialisable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from drywallqa.trainsets import (
    AugmentationConfig,
    augment_pair,
    augmentation_from_dict,
    augmentation_to_dict,
    build_augmentation,
)

ALL_OFF = {f.name: 0.0 for f in dataclasses.fields(AugmentationConfig) if f.name.endswith("_p")}


def only(**probabilities) -> AugmentationConfig:
    return AugmentationConfig(**{**ALL_OFF, **probabilities})


def asymmetric_pair() -> tuple[np.ndarray, np.ndarray]:
    """An L-shaped mask in the top-left corner and an image that marks the same pixels."""
    mask = np.zeros((40, 48), dtype=bool)
    mask[4:30, 3:8] = True
    mask[25:30, 3:20] = True
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (40, 48, 3), dtype=np.uint8)
    image[mask] = (255, 0, 0)
    return image, mask


def test_horizontal_flip_moves_image_and_mask_together():
    image, mask = asymmetric_pair()
    out_image, out_mask = augment_pair(build_augmentation(only(hflip_p=1.0)), image, mask, seed=0)
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    assert out_mask.dtype == bool and out_image.dtype == np.uint8


@pytest.mark.parametrize("seed", range(4))
def test_geometric_transforms_keep_the_mask_on_the_marked_pixels(seed):
    image, mask = asymmetric_pair()
    config = only(hflip_p=0.5, vflip_p=0.5, rotate90_p=1.0, rotate_p=1.0, affine_p=1.0)
    out_image, out_mask = augment_pair(build_augmentation(config), image, mask, seed=seed)
    marked = (out_image[..., 0] > 200) & (out_image[..., 1] < 60)
    iou = (marked & out_mask).sum() / (marked | out_mask).sum()
    assert iou > 0.8  # interpolation blurs the edge of the marked area, nothing else differs


def test_coarse_dropout_clears_the_target_under_its_holes():
    image, mask = np.full((40, 40, 3), 200, np.uint8), np.ones((40, 40), bool)
    config = only(dropout_p=1.0, dropout_holes_range=(2, 2), dropout_size_range=(0.2, 0.2))
    out_image, out_mask = augment_pair(build_augmentation(config), image, mask, seed=1)
    holes = out_image[..., 0] == 0
    assert holes.any() and np.array_equal(~holes, out_mask)


def test_zero_probability_transforms_are_left_out():
    assert [type(t).__name__ for t in build_augmentation(only(vflip_p=0.5, blur_p=0.2))] == ["VerticalFlip", "GaussianBlur"]
    assert len(build_augmentation()) == 9  # flips, 90°, rotate, affine, brightness/contrast, noise, blur, dropout


def test_pipeline_round_trips_through_a_dict_and_json():
    pipeline = build_augmentation()
    data = json.loads(json.dumps(augmentation_to_dict(pipeline)))
    rebuilt = augmentation_from_dict(data)
    image, mask = asymmetric_pair()
    for seed in (0, 5):
        a = augment_pair(pipeline, image, mask, seed)
        b = augment_pair(rebuilt, image, mask, seed)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_seeded_calls_repeat_and_differ_between_seeds():
    pipeline, (image, mask) = build_augmentation(), asymmetric_pair()
    first = augment_pair(pipeline, image, mask, 3)
    np.testing.assert_array_equal(first[0], augment_pair(pipeline, image, mask, 3)[0])
    assert any(not np.array_equal(first[0], augment_pair(pipeline, image, mask, s)[0]) for s in range(4, 8))


def test_transforms_draw_independently():
    # One shared generator per call: both flips must not always fire together.
    image, mask = asymmetric_pair()
    pipeline = build_augmentation(only(hflip_p=0.5, vflip_p=0.5))
    outcomes = set()
    for seed in range(40):
        out = augment_pair(pipeline, image, mask, seed)[1]
        outcomes.add((bool(out[:, -10:].any()), bool(out[-10:].any())))
    assert outcomes == {(False, False), (False, True), (True, False), (True, True)}
