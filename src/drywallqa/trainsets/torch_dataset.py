"""The torch ``Dataset`` over one split of a :class:`TrainSet`.

Items are decoded on access (``cv2.imread`` + ``cv2.resize``) and nothing large is cached, so
worker processes stay small. Training items are augmented on the fly; other splits never are.
Resizing is a plain resize to the configured square size (see :mod:`drywallqa.trainsets.items`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from drywallqa.errors import ConfigError
from drywallqa.trainsets.items import item_seeds, render_record, resize_pair

if TYPE_CHECKING:
    from drywallqa.trainsets.core import TrainSet

PROMPT_MODES = ("sample", "canonical", "heldout")


class TrainSetDataset(Dataset):
    """Items of one split as tensors, ready for a ``DataLoader`` with the default collate.

    Each item is a dict:

    * ``image``: ``float32`` tensor ``[3, S, S]``, RGB in ``[0, 1]``;
    * ``mask``: ``float32`` tensor ``[1, S, S]`` in ``{0, 1}`` (all zero for negatives);
    * ``prompt``: the text prompt (``str``);
    * ``class_name``: prompt class of the item (``str``);
    * ``is_negative``: True for a cross-prompt negative;
    * ``index``: index of the item's record in ``trainset.records`` (its provenance).

    Args:
        trainset: The built set.
        split: Split to serve (``train``, ``valid``, ...).
        augment: Augment on the fly; default True for ``train`` only. Augmented copies are
            always augmented then; originals too when ``config.augment_originals``.
        prompt_mode: ``sample`` draws one of the class's training prompts (default for
            ``train``); ``canonical`` uses the canonical prompt (default otherwise); ``heldout``
            draws a held-out paraphrase (never allowed on ``train``).
        deterministic: Draw augmentation and prompt from ``(seed, epoch, index)``, so an epoch
            replays exactly; otherwise every access draws fresh randomness (also safe across
            ``DataLoader`` workers, which would otherwise share a copied generator state).
        seed: Seed of deterministic mode; ``config.seed`` by default.
        image_size: Square side ``S``; ``config.image_size`` by default.
        uint8: Yield ``image`` and ``mask`` as ``uint8`` (``[0, 255]`` and ``{0, 1}``): a quarter
            of the bytes through the loader and to the GPU; training converts them on the device.

    Example:
        >>> ds = trainset.torch_dataset("train", deterministic=True)  # doctest: +SKIP
        >>> ds.set_epoch(3); item = ds[0]                              # doctest: +SKIP
        >>> item["image"].shape, item["prompt"]                        # doctest: +SKIP
        (torch.Size([3, 512, 512]), 'segment wall crack')
    """

    def __init__(
        self,
        trainset: TrainSet,
        split: str,
        *,
        augment: bool | None = None,
        prompt_mode: str | None = None,
        deterministic: bool = False,
        seed: int | None = None,
        image_size: int | None = None,
        uint8: bool = False,
    ):
        from drywallqa.trainsets.core import TRAIN

        self.trainset = trainset
        self.split = split
        self.records = trainset.split(split)
        self.augment = split == TRAIN if augment is None else augment
        self.prompt_mode = prompt_mode or ("sample" if split == TRAIN else "canonical")
        if self.prompt_mode not in PROMPT_MODES:
            raise ConfigError(f"prompt_mode must be one of {PROMPT_MODES}, got {self.prompt_mode!r}")
        if self.prompt_mode == "heldout" and split == TRAIN:
            raise ConfigError("prompt_mode 'heldout' is for evaluation splits: held-out prompts never reach train")
        self.deterministic = deterministic
        self.seed = trainset.config.seed if seed is None else seed
        self.image_size = image_size or trainset.config.image_size
        self.uint8 = uint8
        self.epoch = 0
        self.pipeline = trainset.augmentation() if self.augment else None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations deterministic mode replays."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if self.deterministic:
            aug_seed, prompt_seed = item_seeds(self.seed, self.epoch, record.index)
        else:
            aug_seed, prompt_seed = None, None
        augment = self.pipeline is not None and (record.is_copy or self.trainset.config.augment_originals)
        image, mask = render_record(self.trainset, record, self.pipeline if augment else None, aug_seed)
        image, mask = resize_pair(image, mask, self.image_size)
        pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        target = torch.from_numpy(mask[None].astype(np.uint8))
        return {
            "image": pixels if self.uint8 else pixels.float().div_(255.0),
            "mask": target if self.uint8 else target.float(),
            "prompt": self.prompt(record.class_name, np.random.default_rng(prompt_seed)),
            "class_name": record.class_name,
            "is_negative": record.is_negative,
            "index": record.index,
        }

    def prompt(self, class_name: str, rng: np.random.Generator) -> str:
        """The prompt of an item of ``class_name`` under :attr:`prompt_mode`."""
        pc = self.trainset.prompt_class(class_name)
        if self.prompt_mode == "canonical":
            return pc.prompt
        choices = pc.training_prompts if self.prompt_mode == "sample" else pc.heldout or (pc.prompt,)
        return choices[int(rng.integers(len(choices)))]

    def __repr__(self) -> str:
        return (
            f"TrainSetDataset(split={self.split!r}, {len(self)} items, size={self.image_size}, "
            f"augment={self.augment}, prompts={self.prompt_mode!r}, deterministic={self.deterministic})"
        )
