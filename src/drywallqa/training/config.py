"""Training configuration: config dataclasses loaded from YAML, every field overridable as ``section.field=value``.

Validation is :mod:`drywallqa.config_schema`'s: a bad value fails on loading with one line naming
the file and the field (``configs/x.yaml: trainer.batch_size: must be >= 1, got 0``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict

from drywallqa.config_schema import (
    DEFAULT_IF_EMPTY,
    Bool,
    Int,
    NonEmptyText,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Probability,
    Text,
    config_dataclass,
    one_of,
    validate,
)
from drywallqa.errors import ConfigError
from drywallqa.training.losses import LossConfig
from drywallqa.yamlio import apply_overrides, read_yaml

#: Validation metrics a run may select checkpoints by, and whether higher or lower is better.
MONITOR_MODES = {"val/iou": "max", "val/confidence_mse": "min"}

def _compile_mode(value: Any) -> Any:
    if not (isinstance(value, bool) or (isinstance(value, str) and value)):
        raise ValueError(f"must be true, false or a torch.compile mode, got {value!r}")
    return value


# YAML reads ``precision: 16`` as a number; Lightning takes it as the text "16".
_NUMBER_AS_TEXT = BeforeValidator(lambda value: str(value) if type(value) is int else value)


@config_dataclass(where="model")
class ModelSection:
    """Which registered model to build, and its config fields (see ``drywallqa.models``).

    Attributes:
        name: Registered architecture.
        args: Its config fields (encoder, text encoder, ...).
        init_from: Start from a saved model instead of fresh weights: a folder written by
            ``save_pretrained``, or ``default`` for the model shipped in the package. Fine-tuning
            on your own photos starts here; its architecture wins over ``name``/``args``, only
            the input size follows ``data.image_size``.
        init_matching: With ``init_from``: build the architecture of ``name``/``args`` instead and
            start every tensor whose name and shape match the saved model's from it (e.g. a wider
            decoder on the saved model's encoder); the others start fresh.
    """

    name: NonEmptyText = "promptunet"
    args: Annotated[dict[Text, Any], DEFAULT_IF_EMPTY] = field(default_factory=dict)
    init_from: NonEmptyText | None = None
    init_matching: Bool = False


@config_dataclass(where="optim")
class OptimConfig:
    """AdamW with linear warm-up then cosine decay; the encoder gets its own learning rate.

    Attributes:
        lr: Peak learning rate of everything but the image encoder.
        encoder_lr: Peak learning rate of the pretrained image encoder.
        weight_decay: AdamW weight decay.
        warmup_fraction: Share of the optimiser steps spent warming up linearly from 0.
        min_lr_ratio: Final learning rate as a share of the peak.
        freeze_encoder: Keep the image encoder fixed (its BatchNorm statistics too).
        train_only: Train only these submodules of the model (e.g. ``[confidence_head]``) and keep
            everything else fixed, BatchNorm statistics included, so the masks stay exactly those
            of the starting model (``model.init_from``) while the listed parts learn.
    """

    lr: NonNegativeFloat = 2e-3
    encoder_lr: NonNegativeFloat = 5e-4
    weight_decay: NonNegativeFloat = 1e-4
    warmup_fraction: Probability = 0.05
    min_lr_ratio: Probability = 0.02
    freeze_encoder: Bool = False
    train_only: list[NonEmptyText] = field(default_factory=list)


@config_dataclass(where="trainer")
class TrainerConfig:
    """Lightning trainer settings.

    Attributes:
        max_epochs: Epochs over the (balanced) training set.
        max_steps: Stop after this many optimiser steps (-1: no limit).
        max_minutes: Wall-clock budget; training stops cleanly when it runs out.
        batch_size: Images per device and step.
        num_workers: Data-loading processes per device.
        accumulate_grad_batches: Batches per optimiser step.
        precision: ``auto`` or any Lightning precision. ``auto`` is bf16-mixed on a GPU with
            bf16 (else 16-mixed), and on a CPU bf16-mixed only with AMX-BF16 or AVX512-BF16,
            else 32-true (:func:`drywallqa.hardware.auto_precision`); the run's ``training.json``
            records the choice and why.
        accelerator: ``auto``, ``cpu``, ``gpu``.
        devices: ``auto``, a count, or a list of device ids.
        num_nodes: Machines for DDP.
        strategy: ``auto``, ``ddp``, ``ddp_spawn``, ...
        early_stopping_patience: Validations without val IoU improvement before stopping (0: off).
        check_val_every_n_epoch: Validate every this many epochs.
        limit_train_batches: Lightning's limit (a share or a count); None for all.
        limit_val_batches: Likewise for validation.
        seed: Global seed.
        log_every_n_steps: Logging period.
        cache_images: Decode every image once and keep it in memory, so loader workers only
            augment (1.2 MB per 640 px photo); None: when training on a GPU.
        channels_last: Train in channels-last memory format (faster convolutions on tensor
            cores and in oneDNN on a CPU); None: on.
        monitor: The validation metric that picks the kept checkpoint and stops early: ``val/iou``
            (mean mask IoU over classes, higher is better) or ``val/confidence_mse`` (squared error
            of the confidence against the true IoU of the mask, lower is better; for
            ``optim.train_only: [confidence_head]``, where the masks do not change).
        data_on_device: Decode every training and validation photo once into ``uint8`` tensors on
            the accelerator and augment whole batches there (:mod:`drywallqa.training.device_data`):
            no loader workers, no host sync per step. None: when training on one GPU.
        compile: ``torch.compile`` the training forward: false, true (the default mode) or a mode
            such as ``max-autotune-no-cudagraphs``. A compilation that fails on the first step is
            reported and the run trains eagerly.
    """

    max_epochs: PositiveInt = 30
    max_steps: Annotated[int, Strict(), Field(ge=-1)] = -1
    max_minutes: Annotated[float, Strict(), Field(gt=0)] | None = None
    batch_size: PositiveInt = 16
    num_workers: NonNegativeInt = 2
    accumulate_grad_batches: PositiveInt = 1
    precision: Annotated[NonEmptyText, _NUMBER_AS_TEXT] = "auto"
    accelerator: NonEmptyText = "auto"
    devices: Any = "auto"
    num_nodes: PositiveInt = 1
    strategy: NonEmptyText = "auto"
    early_stopping_patience: NonNegativeInt = 8
    check_val_every_n_epoch: PositiveInt = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    seed: Int = 0
    log_every_n_steps: PositiveInt = 10
    cache_images: Bool | None = None
    channels_last: Bool | None = None
    monitor: Annotated[Text, AfterValidator(one_of(tuple(MONITOR_MODES), "metric"))] = "val/iou"
    data_on_device: Bool | None = None
    compile: Annotated[Any, AfterValidator(_compile_mode)] = False


@config_dataclass(where="training config")
class TrainConfig:
    """Everything one training run needs.

    Attributes:
        model: Architecture and its arguments.
        data: Training-set config (fields of :class:`drywallqa.trainsets.TrainSetConfig`).
        loss: Loss weights.
        optim: Optimiser and schedule.
        trainer: Lightning trainer settings.
        out: Run folder: checkpoints, logs, curves and the exported best model.
        pack: Train from a training pack (``drywallqa trainset pack``) instead of the dataset
            folders of ``data.datasets``; the other data settings must carve it as it was built.
    """

    model: Annotated[ModelSection, DEFAULT_IF_EMPTY] = field(default_factory=ModelSection)
    data: Annotated[dict[Text, Any], DEFAULT_IF_EMPTY] = field(default_factory=dict)
    loss: Annotated[LossConfig, DEFAULT_IF_EMPTY] = field(default_factory=LossConfig)
    optim: Annotated[OptimConfig, DEFAULT_IF_EMPTY] = field(default_factory=OptimConfig)
    trainer: Annotated[TrainerConfig, DEFAULT_IF_EMPTY] = field(default_factory=TrainerConfig)
    out: NonEmptyText = "runs/promptunet"
    pack: NonEmptyText | None = None

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
        """Load a YAML config (defaults if ``path`` is None) and apply ``section.field=value`` overrides."""
        data: Any = {} if path is None else read_yaml(path)
        if data is None:
            data = {}
        if overrides and isinstance(data, dict):
            apply_overrides(data, overrides, "optim.lr=0.001")
        return cls.from_dict(data, source=str(path or "defaults"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
        """Build and :meth:`check` a config, raising :class:`ConfigError` naming ``source`` and the field."""
        config: TrainConfig = validate(cls, data, source)
        try:
            config.check()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        return config

    def check(self) -> None:
        """Check the ``data`` and ``model`` sections as a run will use them, building and reading nothing.

        Raises:
            ConfigError: Naming the field: an unknown or mistyped ``data`` field, an input size the
                models cannot take (``data.image_size``: a multiple of 32), or a ``model.args``
                field the architecture does not have or a value it refuses.
        """
        from drywallqa.models import model_config
        from drywallqa.models.base import check_image_size
        from drywallqa.trainsets import TrainSetConfig

        image_size = validate(TrainSetConfig, self.data, "", ("data",)).image_size
        check_image_size(image_size, "data.image_size")
        try:
            model_config(self.model.name, **{**self.model.args, "image_size": image_size})
        except ConfigError as exc:
            raise ConfigError(f"model.args: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
