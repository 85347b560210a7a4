"""Training sets without leakage: split by source group, balance classes inside train, add
cross-prompt negatives, and serve or write the result.

Example:
    >>> from drywallqa.trainsets import TrainSetConfig, build_trainset   # doctest: +SKIP
    >>> ts = build_trainset(TrainSetConfig(datasets=["../shared/data"], keep_splits=True))
    >>> ts.check_line()
    'check: LEAK - ... source groups in more than one split: ...'
    >>> train = ts.torch_dataset("train")        # augmented on the fly
    >>> valid = ts.torch_dataset("valid")        # never augmented
"""

from drywallqa.trainsets.augment import (
    augment_pair,
    augmentation_from_dict,
    augmentation_to_dict,
    build_augmentation,
)
from drywallqa.trainsets.build import build_trainset
from drywallqa.trainsets.config import AugmentationConfig, TrainSetConfig
from drywallqa.trainsets.core import TrainRecord, TrainSet
from drywallqa.trainsets.items import resize_pair
from drywallqa.trainsets.materialize import MaterializeResult, materialize
from drywallqa.trainsets.resplit import resplit_like_training, training_groups
from drywallqa.trainsets.sources import find_dataset_folders


def __getattr__(name: str):
    # torch is imported only when the torch dataset is asked for: building, checking and
    # materializing a set (the CLI) do not need it.
    if name == "TrainSetDataset":
        from drywallqa.trainsets.torch_dataset import TrainSetDataset

        return TrainSetDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AugmentationConfig", "MaterializeResult", "TrainRecord", "TrainSet", "TrainSetConfig", "TrainSetDataset",
    "augment_pair", "augmentation_from_dict", "augmentation_to_dict", "build_augmentation", "build_trainset",
    "find_dataset_folders", "materialize", "resize_pair", "resplit_like_training", "training_groups",
]
