"""Training configuration: dataclasses loaded from YAML, every field overridable as ``section.field=value``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drywallqa.errors import ConfigError
from drywallqa.training.losses import LossConfig
from drywallqa.yamlio import parse_override, read_yaml

#: Validation metrics a run may select checkpoints by, and whether higher or lower is better.
MONITOR_MODES = {"val/iou": "max", "val/confidence_mse": "min"}


@dataclass
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

    name: str = "promptunet"
    args: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    init_matching: bool = False


@dataclass
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

    lr: float = 2e-3
    encoder_lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.02
    freeze_encoder: bool = False
    train_only: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.train_only, list) or not all(isinstance(n, str) and n for n in self.train_only):
            raise ConfigError(f"optim.train_only must be a list of submodule names (e.g. [confidence_head]), got {self.train_only!r}")


@dataclass
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

    max_epochs: int = 30
    max_steps: int = -1
    max_minutes: float | None = None
    batch_size: int = 16
    num_workers: int = 2
    accumulate_grad_batches: int = 1
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    early_stopping_patience: int = 8
    check_val_every_n_epoch: int = 1
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    seed: int = 0
    log_every_n_steps: int = 10
    cache_images: bool | None = None
    channels_last: bool | None = None
    monitor: str = "val/iou"
    data_on_device: bool | None = None
    compile: Any = False

    def __post_init__(self) -> None:
        if not (isinstance(self.compile, bool) or (isinstance(self.compile, str) and self.compile)):
            raise ConfigError(f"trainer.compile must be true, false or a torch.compile mode, got {self.compile!r}")
        if self.monitor not in MONITOR_MODES:
            raise ConfigError(f"trainer.monitor must be one of {', '.join(MONITOR_MODES)}, got {self.monitor!r}")


@dataclass
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

    model: ModelSection = field(default_factory=ModelSection)
    data: dict[str, Any] = field(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    out: str = "runs/promptunet"
    pack: str | None = None

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
        """Load a YAML config (defaults if ``path`` is None) and apply ``section.field=value`` overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            data = read_yaml(path) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping at the top level")
        for item in overrides or []:
            set_dotted(data, item)
        return cls.from_dict(data, source=str(path or "defaults"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
        """Build and :meth:`check` a config, raising :class:`ConfigError` naming ``source`` and the field."""
        config = _build(cls, data, source, "")
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

        if not isinstance(self.data, dict):
            raise ConfigError(f"data must be a mapping of training-set fields, got {self.data!r}")
        image_size = TrainSetConfig.from_dict(self.data).image_size
        check_image_size(image_size, "data.image_size")
        if not isinstance(self.model.args, dict):
            raise ConfigError(f"model.args must be a mapping of {self.model.name} config fields, got {self.model.args!r}")
        try:
            model_config(self.model.name, **{**self.model.args, "image_size": image_size})
        except ConfigError as exc:
            raise ConfigError(f"model.args: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def set_dotted(data: dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` override to a nested dict; the value is parsed as YAML."""
    key, value = parse_override(item, "optim.lr=0.001")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[parts[-1]] = value


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown field {prefix}{unknown[0]}; expected one of: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value or {}, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(f, value, source, prefix)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _check_type(f: dataclasses.Field, value: Any, source: str, prefix: str) -> Any:
    """Reject values whose type cannot be the field's (e.g. ``optim.lr=fast``), naming the field."""
    default = f.default
    if default is dataclasses.MISSING or default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok and isinstance(default, float) else value
    elif isinstance(default, str):
        ok = isinstance(value, (str, int)) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{source}: {prefix}{f.name} must be {type(default).__name__}, got {value!r}")
    return value
