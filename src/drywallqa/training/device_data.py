"""Training data that lives on the device (``trainer.data_on_device``): :class:`DeviceSplit`.

Every photo and target of a split is decoded once, resized to the training size and kept as
``uint8`` tensors on the accelerator (a 448 px photo is 0.6 MB: the carved train and valid splits
of the shipped data take about 1.5 GB of GPU memory). Each step then gathers its batch by index,
draws its prompts from a table of embeddings and augments the whole batch with
:class:`~drywallqa.trainsets.device_augment.BatchAugmenter`, all on the device: no loader worker,
no host-to-device copy and no host sync per step. The first GPU call showed the loader workers,
not the GPU, setting the training speed (docs/gpu.md).

The loaders Lightning iterates yield only ``{"device_split": name, "device_batch": i}``;
:meth:`drywallqa.training.module.SegmentationModule.on_after_batch_transfer` turns that into the
batch with :meth:`DeviceSplit.batch`. One process only: with several devices (DDP) every rank
would draw the same batches, so ``data_on_device`` is refused there.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from drywallqa.trainsets.device_augment import BatchAugmenter

if TYPE_CHECKING:
    from drywallqa.trainsets import TrainSet
    from drywallqa.trainsets.config import AugmentationConfig

#: The keys of the placeholder batches the loaders yield.
SPLIT_KEY, BATCH_KEY = "device_split", "device_batch"


class DeviceSplit(Dataset):
    """One split of a training set as tensors on a device, served as whole batches.

    As a ``Dataset`` (for a ``DataLoader`` with ``batch_size=None``) item ``i`` is the placeholder
    of batch ``i`` of the current epoch; :meth:`batch` builds it on the device.

    Args:
        trainset: The built set.
        split: ``train``, ``valid``, ...
        image_size: Square side the photos are resized to (as :func:`~drywallqa.trainsets.resize_pair`).
        embeddings: ``{prompt: (D,) tensor}`` of every prompt the split may draw.
        batch_size: Items per batch.
        augmentation: Augment the items that the CPU path would augment (copies, and originals
            with ``augment_originals``); None for no augmentation (evaluation splits).
        shuffle: A new order every epoch (:meth:`set_epoch`); else the records' order.
        drop_last: Leave out the last, smaller batch of an epoch (static shapes for training).
        sample_prompts: Draw one of the class's training prompts per step, as the CPU path does
            for ``train``; else the canonical prompt.
        workers: Decoding threads; the CPU count by default.

    Example:
        >>> train = DeviceSplit(trainset, "train", image_size=448, embeddings=table,   # doctest: +SKIP
        ...                     batch_size=32, augmentation=trainset.config.augmentation)
        >>> batch = train.to("cuda").batch(0)                                           # doctest: +SKIP
        >>> batch["image"].shape, batch["embedding"].shape                              # doctest: +SKIP
        (torch.Size([32, 3, 448, 448]), torch.Size([32, 384]))
    """

    def __init__(self, trainset: TrainSet, split: str, *, image_size: int, embeddings: dict[str, Tensor],
                 batch_size: int, augmentation: AugmentationConfig | None = None, shuffle: bool = False,
                 drop_last: bool = False, sample_prompts: bool = False, workers: int | None = None):
        records = trainset.split(split)
        self.name, self.batch_size, self.shuffle = split, int(batch_size), shuffle
        self.drop_last = drop_last and len(records) > batch_size
        self.augmenter = BatchAugmenter(augmentation) if augmentation is not None else None
        self.device = torch.device("cpu")

        paths = sorted({str(r.image) for r in records})
        image_index = {path: i for i, path in enumerate(paths)}
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            pixels = list(pool.map(lambda path: _decoded(path, image_size), paths))
        self.images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()

        # Targets: one per (image, class) with a mask; index 0 is the empty target of negatives
        # and backgrounds, so copies and negatives cost no memory.
        targets: list[np.ndarray] = [np.zeros((image_size, image_size), np.uint8)]
        target_index: dict[tuple[str, str], int] = {}
        mask_of = []
        for record in records:
            if record.kind != "positive":
                mask_of.append(0)
                continue
            key = (str(record.image), record.class_name)
            if key not in target_index:
                target_index[key] = len(targets)
                targets.append(_resized_mask(trainset.load_target(record), image_size))
            mask_of.append(target_index[key])
        self.masks = torch.from_numpy(np.stack(targets))[:, None].contiguous()

        prompt_names = sorted(embeddings)
        prompt_index = {p: i for i, p in enumerate(prompt_names)}
        choices = []
        for record in records:
            prompt_class = trainset.prompt_class(record.class_name)
            options = prompt_class.training_prompts if sample_prompts else (prompt_class.prompt,)
            missing = [p for p in options if p not in prompt_index]
            if missing:
                raise KeyError(f"no embedding for prompt {missing[0]!r} of class {record.class_name!r}")
            choices.append([prompt_index[p] for p in options])
        widest = max(len(c) for c in choices)
        self.embeddings = torch.stack([embeddings[p].float() for p in prompt_names])
        self.prompt_choices = torch.tensor([c + [c[0]] * (widest - len(c)) for c in choices], dtype=torch.long)
        self.prompt_counts = torch.tensor([len(c) for c in choices], dtype=torch.long)

        class_index = {name: i for i, name in enumerate(trainset.class_names)}
        self.image_of = torch.tensor([image_index[str(r.image)] for r in records], dtype=torch.long)
        self.mask_of = torch.tensor(mask_of, dtype=torch.long)
        self.class_index = torch.tensor([class_index[r.class_name] for r in records], dtype=torch.long)
        self.is_negative = torch.tensor([r.is_negative for r in records], dtype=torch.bool)
        augment_originals = trainset.config.augment_originals
        self.augmented = torch.tensor([r.is_copy or augment_originals for r in records], dtype=torch.bool)
        self.order = torch.arange(len(records))

    # -- as a Dataset of batch placeholders ------------------------------------------------------
    def __len__(self) -> int:
        items = len(self.order)
        return items // self.batch_size if self.drop_last else -(-items // self.batch_size)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return {SPLIT_KEY: self.name, BATCH_KEY: index}

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's order (on the device, from its seeded default generator)."""
        if self.shuffle:
            self.order = torch.randperm(len(self.order), device=self.device)

    # -- on the device ---------------------------------------------------------------------------
    def to(self, device: str | torch.device) -> DeviceSplit:
        """Move every tensor to ``device`` (once: a no-op when they are there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        for name in ("images", "masks", "embeddings", "prompt_choices", "prompt_counts", "image_of", "mask_of",
                     "class_index", "is_negative", "augmented", "order"):
            setattr(self, name, getattr(self, name).to(device))
        self.device = device
        return self

    @property
    def nbytes(self) -> int:
        """Bytes the decoded photos and targets take."""
        return self.images.numel() + self.masks.numel()

    def batch(self, index: int) -> dict[str, Tensor]:
        """Batch ``index`` of the epoch, built on the device.

        Returns:
            ``image`` float ``(B, 3, S, S)`` in ``[0, 1]``, ``mask`` float ``(B, 1, S, S)``,
            ``embedding`` ``(B, D)`` (each item's prompt), ``class_index`` ``(B,)`` long (into
            ``trainset.class_names``) and ``is_negative`` ``(B,)`` bool.
        """
        items = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.images[self.image_of[items]]
        masks = self.masks[self.mask_of[items]]
        counts = self.prompt_counts[items]
        pick = (torch.rand(items.shape[0], device=self.device) * counts).long().clamp_max(counts - 1)
        prompts = self.prompt_choices[items].gather(1, pick[:, None])[:, 0]
        if self.augmenter is not None:
            images, masks = self.augmenter(images, masks, active=self.augmented[items])
        else:
            images, masks = images.float().div_(255.0), masks.float()
        return {"image": images, "mask": masks, "embedding": self.embeddings[prompts],
                "class_index": self.class_index[items], "is_negative": self.is_negative[items]}

    def __repr__(self) -> str:
        return (f"DeviceSplit({self.name!r}, {len(self.order)} items, {self.images.shape[0]} photos, "
                f"{self.nbytes / 2**20:.0f} MiB on {self.device}, augment={self.augmenter is not None})")


def _decoded(path: str, size: int) -> np.ndarray:
    """A photo as RGB ``uint8`` ``(size, size, 3)``, resized as the CPU path resizes it."""
    from drywallqa.trainsets.items import read_rgb, resize_pair

    image = read_rgb(path)
    return resize_pair(image, np.zeros(image.shape[:2], bool), size)[0]


def _resized_mask(mask: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if mask.shape == (size, size):
        return mask.astype(np.uint8)
    return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def prompt_embeddings(model, trainset: TrainSet) -> dict[str, Tensor]:
    """``{prompt: (D,) float32 tensor}`` of every canonical and training prompt of the set's classes."""
    prompts = sorted({p for name in trainset.class_names
                      for p in (trainset.prompt_class(name).prompt, *trainset.prompt_class(name).training_prompts)})
    return dict(zip(prompts, model.embed_prompts(prompts).float().cpu()))
