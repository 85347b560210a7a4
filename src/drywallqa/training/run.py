"""``train(config)``: build the training set, fit any registered model with Lightning, export the best.

A run folder holds::

    checkpoints/        Lightning checkpoints (best by val IoU, and last.ckpt for --resume)
    logs/version_N/     metrics.csv of every logged value, one folder per attempt (resume adds one)
    tensorboard/        TensorBoard events
    training_curves.png loss parts, val IoU/Dice per class, learning rates
    model/              the best weights as config.json + model.safetensors (+ training.json)
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from drywallqa.errors import ConfigError
from drywallqa.files import atomic_write_json, atomic_write_text
from drywallqa.hardware import auto_precision
from drywallqa.training.config import MONITOR_MODES, TrainConfig

if TYPE_CHECKING:
    from drywallqa.trainsets.pack import TrainingPack


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: The run folder.
        model_dir: Exported best model (load with ``PromptSegmentationModel.from_pretrained``).
        best_val_iou: Best mean-over-classes val IoU, or None if never validated.
        epochs: Epochs completed.
        minutes: Wall-clock minutes of the fit.
        hardware: What it ran on, for the record next to every result.
    """

    run_dir: Path
    model_dir: Path
    is_global_zero: bool
    best_val_iou: float | None
    epochs: int
    minutes: float
    hardware: str


def say(message: str) -> None:
    """Print from the first process only (every DDP process runs this code)."""
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        print(message)


def _hardware(trainer) -> str:
    import platform

    import torch

    if trainer.accelerator.__class__.__name__.lower().startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return f"{trainer.world_size} x {name}"
    import os

    return f"{trainer.world_size} process(es) on CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def _auto_flag(name: str, value: object, auto: bool) -> bool:
    """A setting that is True, False, or None for ``auto``."""
    if value is None:
        return auto
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true, false or null (auto), got {value!r}")
    return value


def _one_process(trainer) -> bool:
    """True when a run trains in one process on one device (no DDP)."""
    import torch

    devices = trainer.devices
    one = devices == 1 or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    if devices == "auto":
        one = trainer.accelerator == "cpu" or torch.cuda.device_count() <= 1
    return one and trainer.num_nodes == 1 and trainer.strategy == "auto"


def device_data_splits(trainset, model, image_size: int, batch_size: int) -> dict:
    """The train and valid splits decoded for ``trainer.data_on_device`` (:class:`DeviceSplit`)."""
    from drywallqa.training.device_data import DeviceSplit, prompt_embeddings

    embeddings = prompt_embeddings(model, trainset)
    return {
        "train": DeviceSplit(trainset, "train", image_size=image_size, embeddings=embeddings, batch_size=batch_size,
                             augmentation=trainset.config.augmentation, shuffle=True, drop_last=True,
                             sample_prompts=True),
        "valid": DeviceSplit(trainset, "valid", image_size=image_size, embeddings=embeddings, batch_size=batch_size),
    }


def training_precision(precision: str, on_gpu: bool) -> tuple[str, str]:
    """The Lightning precision of a run and why: ``trainer.precision`` as given, or for ``auto``
    the rule of :func:`drywallqa.hardware.auto_precision` (bf16 on a CPU only with AMX-BF16 or
    AVX512-BF16, whose absence makes it several times slower than fp32)."""
    if precision != "auto":
        return precision, "trainer.precision"
    choice = auto_precision("cuda" if on_gpu else "cpu")
    return choice.lightning, f"auto: {choice.reason}"


def trainset_config(config: TrainConfig):
    """The training set of a run: ``config.data``, the generated scenes (``data.synthetic``)
    rendered into the run folder unless a cache is named, so a run holds everything it read."""
    from drywallqa.trainsets import TrainSetConfig

    data = TrainSetConfig.from_dict(config.data)
    if data.synthetic.images and data.synthetic.cache is None:
        data = data.with_overrides({"synthetic.cache": str(Path(config.out) / "synthetic")})
    return data


def init_source(config: TrainConfig) -> Path | None:
    """The folder ``model.init_from`` names (``default``: the shipped model), checked; None when unset.

    Raises:
        ConfigError: If the folder holds no saved model; checked before the training set is built.
    """
    if not config.model.init_from:
        return None
    if config.model.init_from == "default":
        from drywallqa.inference import default_model_path

        source = Path(str(default_model_path()))
    else:
        source = Path(config.model.init_from)
    if not (source / "config.json").is_file():
        raise ConfigError(f"model.init_from {source}: no config.json; expected a folder written by save_pretrained()")
    return source


def initial_model(config: TrainConfig, image_size: int, source: Path | None, pack: TrainingPack | None = None):
    """Fresh weights from the registry, or the saved model in ``source`` to fine-tune (``model.init_from``).

    With a training ``pack`` the pretrained encoder weights and the prompt embeddings come from
    the pack, so neither weights package needs to be installed.
    """
    import dataclasses

    from drywallqa.models import PromptSegmentationModel, build_model
    from drywallqa.training.pack import apply_pack

    if source is None:
        from_pack = pack is not None and pack.has_pretrained
        model = build_model(config.model.name, load_pretrained=not from_pack, **{**config.model.args, "image_size": image_size})
    elif config.model.init_matching:
        model = build_model(config.model.name, load_pretrained=False, **{**config.model.args, "image_size": image_size})
        saved = PromptSegmentationModel.from_pretrained(source).state_dict()
        own = model.state_dict()
        matching = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(matching, strict=False)
        say(f"starting {len(matching)} of {len(own)} tensors of {model.name} from {source}; the others are new")
    else:
        model = PromptSegmentationModel.from_pretrained(source)
        # The weights are size-agnostic (fully convolutional); only the recorded input size changes.
        model.config = dataclasses.replace(model.config, image_size=image_size)
        say(f"fine-tuning {model.name} from {source}")
    if pack is not None:
        apply_pack(model, pack, config)
    return model.train()


def earlier_stages(source: Path) -> list[dict]:
    """The training stages behind a saved model, oldest first, read from its ``training.json``.

    A model fine-tuned from ``source`` records these beside its own budget, so its card can give
    the whole budget. Empty when ``source`` has no ``training.json``.

    Raises:
        ConfigError: If ``training.json`` is not readable JSON.
    """
    record_path = Path(source) / "training.json"
    if not record_path.is_file():
        return []
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"model.init_from {record_path}: unreadable training record ({error})") from None
    # "model" is where the weights were read from (for the shipped model, a path that later stages
    # overwrite); "run" is the run folder that trained them, which stays true.
    return [*record.get("earlier_stages", []), {
        "model": str(source), "run": record.get("train_config", {}).get("out"), "budget": record.get("budget"),
        "best_val_iou": record.get("best_val_iou"), "image_size": record.get("trainset_config", {}).get("image_size"),
    }]


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train a model as ``config`` says.

    Args:
        config: The run's configuration (see :class:`TrainConfig`).
        resume: Continue from ``<out>/checkpoints/last.ckpt`` when it exists.
        progress: Show Lightning's progress bar.

    Returns:
        A :class:`TrainResult`; the best model is exported to ``<out>/model``.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
    )
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from drywallqa.models import get_model_class
    from drywallqa.training.curves import plot_training_curves
    from drywallqa.training.module import EpochSetter, SegmentationModule, ThroughputMonitor
    from drywallqa.training.pack import open_pack
    from drywallqa.trainsets import augmentation_to_dict, build_trainset

    if not getattr(get_model_class(config.model.name), "trainable", True):
        raise ConfigError(f"{config.model.name} is zero-shot (evaluation and prediction only); it cannot be trained")
    if config.pack and config.data.get("datasets"):
        raise ConfigError("train: give dataset folders (--data, data.datasets) or a training pack (--pack), not both")
    run_dir = Path(config.out)
    cfg_t = config.trainer
    on_gpu = torch.cuda.is_available() and cfg_t.accelerator in {"auto", "gpu", "cuda"}
    cache_images = _auto_flag("trainer.cache_images", cfg_t.cache_images, on_gpu)
    # Channels-last suits both tensor cores and oneDNN's CPU convolutions (fp32 and bf16).
    channels_last = _auto_flag("trainer.channels_last", cfg_t.channels_last, True)
    precision, precision_reason = training_precision(cfg_t.precision, on_gpu)
    say(f"precision {precision} ({precision_reason}){', channels-last' if channels_last else ''}")
    data_on_device = _auto_flag("trainer.data_on_device", cfg_t.data_on_device, on_gpu and _one_process(cfg_t))
    if data_on_device and not _one_process(cfg_t):
        raise ConfigError("trainer.data_on_device trains in one process on one device; set it false for "
                          "several devices, nodes or a strategy other than auto")
    if on_gpu:  # static shapes (drop_last): let cuDNN time its algorithms once per shape
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg_t.seed, workers=True, verbose=False)

    # Fail on a bad data or model section, a wrong --init-from or --pack (or an unreadable record)
    # before minutes of data preparation.
    config.check()
    source = init_source(config)
    stages = earlier_stages(source) if source else []
    pack = open_pack(config)
    trainset = build_trainset(pack.trainset_config(config.data) if pack else trainset_config(config))
    if pack:
        pack.check_split(trainset)
        pack.check_image_size(trainset.config.image_size)
        say(f"training from {pack!r}")
    say(trainset.check_line())
    for split in ("train", "valid"):
        if split not in trainset.splits:
            raise ConfigError(f"the training set has no {split!r} split; check data.fractions")
    if cache_images and not data_on_device:
        started = time.perf_counter()
        count = trainset.cache_images(("train", "valid"))
        say(f"decoded {count} images into memory in {time.perf_counter() - started:.1f} s")
    image_size = trainset.config.image_size
    model = initial_model(config, image_size, source, pack)
    device_splits = {}
    if data_on_device:
        started = time.perf_counter()
        device_splits = device_data_splits(trainset, model, image_size, cfg_t.batch_size)
        say(f"decoded {sum(s.images.shape[0] for s in device_splits.values())} images for the device in "
            f"{time.perf_counter() - started:.1f} s ({sum(s.nbytes for s in device_splits.values()) / 2**20:.0f} MiB)")
        train_loader, valid_loader = (DataLoader(device_splits[s], batch_size=None) for s in ("train", "valid"))
    else:
        train_data = trainset.torch_dataset("train", uint8=True)
        valid_data = trainset.torch_dataset("valid", uint8=True)
        loader_args = {
            "batch_size": cfg_t.batch_size, "num_workers": cfg_t.num_workers, "pin_memory": torch.cuda.is_available(),
            # Workers outlive the epoch: on a GPU an epoch takes seconds, and starting them costs about as much.
            "persistent_workers": cfg_t.num_workers > 0,
        }
        train_loader = DataLoader(train_data, shuffle=True, drop_last=len(train_data) > cfg_t.batch_size, **loader_args)
        valid_loader = DataLoader(valid_data, shuffle=False, **loader_args)

    module = SegmentationModule(
        model, config.loss, config.optim, time_budget_minutes=cfg_t.max_minutes, class_names=trainset.class_names,
        channels_last=channels_last, compile=cfg_t.compile,
    )
    module.device_splits = device_splits
    module.run_metadata = {
        "train_config": config.to_dict(),
        "trainset_config": trainset.config.to_dict(),
        # On the device the batch augmenter draws from the same config (no albumentations there).
        "augmentation": ({"on_device": "drywallqa.trainsets.device_augment.BatchAugmenter",
                          **dataclasses.asdict(trainset.config.augmentation)} if data_on_device
                         else augmentation_to_dict(trainset.augmentation())),
        **({"pack": pack.describe()} if pack else {}),
    }
    monitor, mode = cfg_t.monitor, MONITOR_MODES[cfg_t.monitor]
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best-{epoch:03d}", monitor=monitor, mode=mode,
        save_last=True, save_top_k=1,
    )
    throughput = ThroughputMonitor(report=say)
    callbacks = [checkpoint, LearningRateMonitor(logging_interval="step"), EpochSetter(), throughput]
    if cfg_t.early_stopping_patience > 0:
        # Checked after validations only: a step or time budget that ends mid-epoch has no val/iou yet.
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=cfg_t.early_stopping_patience,
                                       check_on_train_epoch_end=False))
    # One CSV log per attempt (logs/version_N): a resumed run appends a version instead of
    # overwriting the history; the curves are drawn from all of them.
    loggers = [CSVLogger(run_dir, name="logs")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="tensorboard"))
    except ImportError:
        pass
    trainer = L.Trainer(
        max_epochs=cfg_t.max_epochs, max_steps=cfg_t.max_steps,
        max_time={"minutes": cfg_t.max_minutes} if cfg_t.max_minutes else None,
        accelerator=cfg_t.accelerator, devices=cfg_t.devices, num_nodes=cfg_t.num_nodes, strategy=cfg_t.strategy,
        precision=precision, accumulate_grad_batches=cfg_t.accumulate_grad_batches,
        check_val_every_n_epoch=cfg_t.check_val_every_n_epoch, limit_train_batches=cfg_t.limit_train_batches,
        limit_val_batches=cfg_t.limit_val_batches, log_every_n_steps=cfg_t.log_every_n_steps,
        callbacks=callbacks, logger=loggers, enable_progress_bar=progress, enable_model_summary=False,
        default_root_dir=run_dir, num_sanity_val_steps=0,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if resume and last.is_file() else None
    if resume and ckpt_path is None:
        say(f"no {last} to resume from; starting a new run")
    trainer.fit(module, train_loader, valid_loader, ckpt_path=ckpt_path)
    minutes = module.training_minutes()  # this attempt and, after --resume, the ones before

    best = checkpoint.best_model_path
    best_score = checkpoint.best_model_score
    kept = "best validated checkpoint"
    if trainer.global_step and module.validated_at_step != trainer.global_step:
        # The run stopped between validations (a step or time budget, mid-epoch): validate the final
        # weights too, and keep them when they beat every validated checkpoint.
        trainer.validate(module, valid_loader, verbose=False)
        final = trainer.callback_metrics.get(monitor)
        better = best_score is None or (float(final) > float(best_score) if mode == "max" else float(final) < float(best_score))
        if final is not None and better:
            best, best_score, kept = "", final, "final weights (validated after the last step)"
    best_val_iou = best_score
    if best:
        checkpoint_data = torch.load(best, map_location="cpu", weights_only=False)
        module.load_state_dict(checkpoint_data["state_dict"])
        if monitor != "val/iou":  # the kept checkpoint's mask IoU, as the model card reports it
            best_val_iou = checkpoint_data.get("drywallqa_val", {}).get("val/iou")
    elif monitor != "val/iou":
        best_val_iou = trainer.callback_metrics.get("val/iou")
    result = TrainResult(
        run_dir=run_dir, model_dir=run_dir / "model", is_global_zero=trainer.is_global_zero,
        best_val_iou=float(best_val_iou) if best_val_iou is not None else None,
        epochs=trainer.fit_loop.epoch_progress.current.completed, minutes=round(minutes, 2), hardware=_hardware(trainer),
    )
    if trainer.is_global_zero:
        model.save_pretrained(result.model_dir)
        atomic_write_json(result.model_dir / "training.json", {
            "budget": {"hardware": result.hardware, "minutes": result.minutes, "epochs": result.epochs,
                       "steps": trainer.global_step, "precision": precision,
                       "precision_reason": precision_reason, "channels_last": channels_last,
                       "train_images_per_s": throughput.images_per_s(), "data_on_device": data_on_device,
                       "compiled": module.compiled},
            "best_val_iou": result.best_val_iou, "best_checkpoint": str(best), "kept": kept,
            **({"monitor": {"metric": monitor, "best": float(best_score)}} if monitor != "val/iou" and best_score is not None else {}),
            "trainset_check": trainset.check_line(), "trainset_counts": trainset.counts(),
            **module.run_metadata,
            **({"earlier_stages": stages} if stages else {}),
        }, indent=2)
        metrics_csvs = sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
        if metrics_csvs:
            plot_training_curves(metrics_csvs, run_dir / "training_curves.png")
        atomic_write_text(run_dir / "train-config.json", json.dumps(config.to_dict(), indent=2))
    return result

