"""TrainSetDataset: item format, plain resize, determinism, no augmentation outside train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from drywallqa.trainsets import build_trainset, resize_pair
from drywallqa.trainsets.items import read_rgb


@pytest.fixture(scope="module")
def trainset(sample_data):
    from drywallqa.trainsets import TrainSetConfig

    return build_trainset(TrainSetConfig(datasets=[str(sample_data.root)], image_size=32, negative_rate=0.2))


def test_item_format(trainset):
    for split in ("train", "valid"):
        item = trainset.torch_dataset(split)[0]
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert 0 <= item["image"].min() and item["image"].max() <= 1
        assert item["mask"].shape == (1, 32, 32) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert isinstance(item["prompt"], str) and isinstance(item["class_name"], str)
        assert isinstance(item["is_negative"], bool) and isinstance(item["index"], int)


def test_batches_with_the_default_collate(trainset):
    batch = next(iter(DataLoader(trainset.torch_dataset("train"), batch_size=4, shuffle=True)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)
    assert len(batch["prompt"]) == 4 and batch["is_negative"].dtype == torch.bool


def test_deterministic_per_seed_epoch_and_index(trainset):
    dataset = trainset.torch_dataset("train", deterministic=True)
    copy_position = next(i for i, r in enumerate(dataset.records) if r.is_copy)
    first = dataset[copy_position]
    again = trainset.torch_dataset("train", deterministic=True)[copy_position]
    assert torch.equal(first["image"], again["image"]) and first["prompt"] == again["prompt"]
    dataset.set_epoch(1)
    epochs = [dataset[copy_position]["image"]]
    dataset.set_epoch(2)
    epochs.append(dataset[copy_position]["image"])
    assert any(not torch.equal(first["image"], other) for other in epochs)
    other_seed = trainset.torch_dataset("train", deterministic=True, seed=99)[copy_position]
    assert not torch.equal(first["image"], other_seed["image"])


def test_evaluation_items_are_never_augmented(trainset):
    dataset = trainset.torch_dataset("valid")
    assert dataset.pipeline is None and dataset.prompt_mode == "canonical"
    for position in range(min(len(dataset), 4)):
        record = dataset.records[position]
        item = dataset[position]
        image, mask = resize_pair(read_rgb(record.image), trainset.load_target(record), 32)
        np.testing.assert_array_equal(item["image"].numpy(), image.transpose(2, 0, 1).astype(np.float32) / 255)
        np.testing.assert_array_equal(item["mask"][0].numpy().astype(bool), mask)
        assert item["prompt"] == trainset.prompt_class(record.class_name).prompt


def test_plain_resize_keeps_masks_binary():
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 5:9] = True
    small_image, small_mask = resize_pair(image, mask, 32)
    assert small_image.shape == (32, 32, 3) and small_mask.dtype == bool
    assert small_mask[5:15, 3:4].all() and small_mask.sum() == 10 * 2
