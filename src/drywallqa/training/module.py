"""The one LightningModule that trains any registered model with the shared loss and metrics."""

from __future__ import annotations

import math
import time
import warnings

import lightning as L
import torch
from torch import Tensor

from drywallqa.errors import ConfigError
from drywallqa.models.base import PromptSegmentationModel
from drywallqa.training.config import OptimConfig
from drywallqa.training.device_data import BATCH_KEY, SPLIT_KEY, DeviceSplit
from drywallqa.training.losses import LossConfig, SegmentationLoss, predicted_mask_iou


class SegmentationModule(L.LightningModule):
    """Trains a :class:`PromptSegmentationModel` on batches from the training-set loader.

    A batch is a dict with ``image`` float ``(B, 3, S, S)`` in ``[0, 1]``, ``mask`` float
    ``(B, 1, S, S)``, ``prompt`` (B strings), ``class_name`` (B strings) and ``is_negative``
    (B bools: the prompt names a class absent from the image, so the target is empty).

    Validation logs, per class, IoU and Dice as a mean over positive images
    (``val/iou_<class>``), their mean over classes (``val/iou``, the default checkpoint and
    early-stopping metric), the share of image pixels predicted on negatives (``val/negative_fp``),
    and how well the confidence head predicts the IoU of its own mask: the squared error over all
    images, negatives included (``val/confidence_mse``), and the Pearson r per class over positive
    images (``val/confidence_r_<class>``, the model card's confidence–IoU r).
    """

    def __init__(self, model: PromptSegmentationModel, loss: LossConfig, optim: OptimConfig,
                 time_budget_minutes: float | None = None, class_names: tuple[str, ...] = (),
                 channels_last: bool = False, compile: bool | str = False):
        super().__init__()
        self.class_names = tuple(class_names)
        self.time_budget_minutes = time_budget_minutes
        self.channels_last = channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.loss = SegmentationLoss(loss)
        self.optim = optim
        # Splits on the device (trainer.data_on_device), by name; their loaders yield placeholders.
        self.device_splits: dict[str, DeviceSplit] = {}
        self.compile_mode = None if compile is False else ("default" if compile is True else str(compile))
        self._compiled = None
        self._compiled_ran = False
        self._val: dict[str, Tensor] = {}
        # Optimiser step of the last validation, so training can tell whether the final weights were validated.
        self.validated_at_step: int | None = None
        self.minutes_before_resume = 0.0
        if optim.freeze_encoder and hasattr(model, "encoder"):
            model.encoder.requires_grad_(False)
        self.trained_parts = [_submodule(model, name) for name in optim.train_only]
        if self.trained_parts:
            model.requires_grad_(False)
            for part in self.trained_parts:
                part.requires_grad_(True)

    def on_fit_start(self) -> None:
        self._fit_started = time.monotonic()
        for split in self.device_splits.values():
            split.to(self.device)
        if self.compile_mode and self._compiled is None:
            # Only the training forward is compiled: validation runs the eager model (another mode,
            # a smaller last batch), so it costs no second compilation.
            self._compiled = torch.compile(self.model, mode=self.compile_mode, dynamic=False)

    def training_minutes(self) -> float:
        """Minutes of fitting so far, the attempts before a ``--resume`` included."""
        started = getattr(self, "_fit_started", None)
        return self.minutes_before_resume + ((time.monotonic() - started) / 60 if started is not None else 0.0)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The configs and the augmentation pipeline travel with every checkpoint, and the minutes
        # trained so far, so a resumed run records its whole budget.
        checkpoint["drywallqa"] = getattr(self, "run_metadata", {})
        checkpoint["drywallqa_minutes"] = self.training_minutes()
        # The validation the checkpoint was saved after, every metric (Lightning keeps the monitored one only).
        metrics = self.trainer.callback_metrics if self._trainer is not None else {}
        checkpoint["drywallqa_val"] = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.minutes_before_resume = float(checkpoint.get("drywallqa_minutes", 0.0))

    def on_train_epoch_start(self) -> None:
        # A frozen encoder keeps its ImageNet BatchNorm statistics too.
        if self.optim.freeze_encoder and hasattr(self.model, "encoder"):
            self.model.encoder.eval()
        if self.trained_parts:  # everything but the trained parts runs as at inference
            self.model.eval()
            for part in self.trained_parts:
                part.train()

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if SPLIT_KEY in batch:  # data on the device: the loader sent only the batch's number
            batch = self.device_splits[batch[SPLIT_KEY]].to(self.device).batch(int(batch[BATCH_KEY]))
        # The loader sends uint8 pixels and masks (a quarter of the bytes); convert on the device.
        if batch["image"].dtype == torch.uint8:
            batch["image"] = batch["image"].float().div_(255.0)
        if batch["mask"].dtype == torch.uint8:
            batch["mask"] = batch["mask"].float()
        if self.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def forward(self, images: Tensor, prompts: list[str]):
        return self.model.segment(images, prompts)

    def _embeddings(self, batch: dict) -> Tensor:
        """The batch's prompt embeddings: carried by a device batch, else embedded from its prompts."""
        if "embedding" in batch:
            return batch["embedding"]
        return self.model.embed_prompts(list(batch["prompt"])).to(self.device, non_blocking=True)

    @property
    def compiled(self) -> bool:
        """True while the training forward runs compiled (``compile`` set and compiling worked)."""
        return self._compiled is not None

    def _train_forward(self, images: Tensor, embeddings: Tensor):
        """The model's forward for training: compiled when ``compile`` is set and compiling works.

        A compilation that fails on the first step (a backend missing on this machine, an
        unsupported op) is reported and training goes on eagerly instead of ending the run.
        """
        if self._compiled is not None:
            try:
                out = self._compiled(images, embeddings)
                self._compiled_ran = True
                return out
            except Exception as error:  # noqa: BLE001 - only before the first compiled step succeeded
                if self._compiled_ran:
                    raise
                warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); training eagerly", stacklevel=2)
                self._compiled = None
        return self.model(images, embeddings)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        size = batch["image"].shape[0]
        out = self._train_forward(batch["image"], self._embeddings(batch))
        parts = self.loss(out.mask_logits, batch["mask"], out.confidence_logits)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, prog_bar=False, batch_size=size, sync_dist=False)
        self.log("loss", parts["total"], prog_bar=True, logger=False, batch_size=size)
        return parts["total"]

    def _accumulate(self, key: str, values: Tensor, weights: Tensor | None = None) -> None:
        """Add ``sum(values * weights)`` and ``sum(weights)`` to a validation total, on the device."""
        values = values.float().reshape(-1)
        weights = torch.ones_like(values) if weights is None else weights.float().reshape(-1)
        total = torch.stack([(values * weights).sum(), weights.sum()])
        self._val[key] = self._val[key] + total if key in self._val else total

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        from drywallqa.evaluation.metrics import dice_score, get_stats, iou_score

        out = self.model(batch["image"], self._embeddings(batch))
        parts = self.loss(out.mask_logits, batch["mask"], out.confidence_logits)
        self.log("val/loss", parts["total"], batch_size=batch["image"].shape[0], sync_dist=True)
        stats = get_stats(out.mask_logits, batch["mask"], threshold=0.0)  # logits: 0 is probability 0.5
        iou = iou_score(*stats, reduction="none")
        dice = dice_score(*stats, reduction="none")
        negative = torch.as_tensor(batch["is_negative"], device=self.device).bool().reshape(-1)
        if "class_index" in batch:
            classes = batch["class_index"]
        else:
            ids = {name: i for i, name in enumerate(self.class_names)}
            classes = torch.tensor([ids.get(name, -1) for name in batch["class_name"]], device=self.device)
        # Every total is a masked sum on the device: no per-image host sync.
        confidence = torch.sigmoid(out.confidence_logits.float()) if out.confidence_logits is not None else None
        mask_iou = predicted_mask_iou(out.mask_logits.float(), batch["mask"].float())
        if confidence is not None:
            self._accumulate("confidence_mse", (confidence - mask_iou) ** 2)
        self._accumulate("negative_fp", stats.fp.float() / (stats.fp + stats.tn).float().clamp(min=1), negative)
        for index, class_name in enumerate(self.class_names):
            positive = ~negative & (classes == index)
            self._accumulate(f"iou_{class_name}", iou, positive)
            self._accumulate(f"dice_{class_name}", dice, positive)
            if confidence is not None:
                # Moments of (confidence, IoU), reduced like every mean below, give Pearson r.
                x, y = confidence, mask_iou
                for moment, value in (("x", x), ("y", y), ("xy", x * y), ("xx", x * x), ("yy", y * y)):
                    self._accumulate(f"rmoment_{moment}_{class_name}", value, positive)

    def on_validation_epoch_end(self) -> None:
        self.validated_at_step = self.trainer.global_step
        # Every process reduces the same keys in the same order (sums and counts), so DDP ranks
        # that saw different classes cannot deadlock or average unlike things.
        keys = ["negative_fp", "confidence_mse"] + [f"{m}_{c}" for c in self.class_names for m in ("iou", "dice")]
        keys += [f"rmoment_{m}_{c}" for c in self.class_names for m in ("x", "y", "xy", "xx", "yy")]
        keys += sorted(set(self._val) - set(keys))
        device = self.device
        totals = torch.stack([self._val[k].to(device) if k in self._val else torch.zeros(2, device=device) for k in keys])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        self._val.clear()
        metrics = {f"val/{k}": totals[i, 0] / totals[i, 1] for i, k in enumerate(keys) if totals[i, 1] > 0}
        for class_name in self.class_names:
            moments = {m: metrics.pop(f"val/rmoment_{m}_{class_name}", None) for m in ("x", "y", "xy", "xx", "yy")}
            if None not in moments.values():
                covariance = moments["xy"] - moments["x"] * moments["y"]
                spread = ((moments["xx"] - moments["x"] ** 2) * (moments["yy"] - moments["y"] ** 2)).clamp(min=0).sqrt()
                if float(spread) > 1e-12:
                    metrics[f"val/confidence_r_{class_name}"] = covariance / spread
        ious = [v for k, v in metrics.items() if k.startswith("val/iou_")]
        if ious:
            metrics["val/iou"] = torch.stack(ious).mean()
        if metrics:
            self.log_dict(metrics, prog_bar=False)
            if "val/iou" in metrics:
                self.log("val_iou", metrics["val/iou"], prog_bar=True, logger=False)

    def configure_optimizers(self):
        encoder = getattr(self.model, "encoder", None)
        encoder_params = {id(p) for p in encoder.parameters()} if encoder is not None else set()
        groups = [
            {"params": [p for p in self.model.parameters() if p.requires_grad and id(p) in encoder_params], "lr": self.optim.encoder_lr},
            {"params": [p for p in self.model.parameters() if p.requires_grad and id(p) not in encoder_params], "lr": self.optim.lr},
        ]
        groups = [g for g in groups if g["params"]]
        # One fused kernel per step on a GPU instead of a few per parameter tensor.
        fused = self.device.type == "cuda"
        optimizer = torch.optim.AdamW(groups, weight_decay=self.optim.weight_decay, fused=fused)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = max(int(total * self.optim.warmup_fraction), 1)
        floor = self.optim.min_lr_ratio
        budget_s = self.time_budget_minutes * 60 if self.time_budget_minutes else None
        started = time.monotonic()

        warmup_share = max(self.optim.warmup_fraction, 1e-9)

        def lr_factor(step: int) -> float:
            # Under a wall-clock budget the schedule follows whichever ends first, steps or time,
            # so the warm-up ends and the learning rate has decayed when the budget stops the run
            # (on a GPU the epoch limit may allow ten times the steps the budget does).
            elapsed = (time.monotonic() - started) / budget_s if budget_s else 0.0
            if step < warmup and elapsed < warmup_share:
                return max((step + 1) / warmup, elapsed / warmup_share)
            progress = (step - warmup) / max(total - warmup, 1)
            if budget_s:
                progress = max(progress, elapsed)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _submodule(model: PromptSegmentationModel, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        children = ", ".join(n for n, _ in model.named_children())
        raise ConfigError(f"optim.train_only: {type(model).__name__} has no submodule {name!r} (it has: {children})") from None


class EpochSetter(L.Callback):
    """Tells the training set the epoch, so its augmentation draws differ per epoch yet stay seeded."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(trainer.current_epoch)


class ThroughputMonitor(L.Callback):
    """Training images per second, per epoch (``train/images_per_s``), reported every ``every_s``.

    The first epoch includes worker start-up and kernel selection, so :meth:`images_per_s`
    gives the median of the later ones when there are any.

    Args:
        report: Called with a progress line (e.g. ``print``); None for no lines.
        every_s: Seconds between progress lines.
    """

    def __init__(self, report=None, every_s: float = 30.0):
        self.report = report
        self.every_s = every_s
        self.rates: list[float] = []
        self._images = 0
        self._epoch_started = 0.0
        self._last_report = time.monotonic()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._images = 0
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += batch["image"].shape[0]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        seconds = time.monotonic() - self._epoch_started
        if not self._images or seconds <= 0:
            return
        rate = self._images / seconds
        self.rates.append(rate)
        pl_module.log("train/images_per_s", rate, logger=True)
        if self.report and time.monotonic() - self._last_report >= self.every_s:
            self._last_report = time.monotonic()
            val = trainer.callback_metrics.get("val/iou")
            score = f", val IoU {float(val):.4f}" if val is not None else ""
            self.report(f"epoch {trainer.current_epoch}: {rate:,.0f} training images/s, step {trainer.global_step}{score}")

    def images_per_s(self) -> float | None:
        """Median training images/s over the epochs after the first (all when there is one)."""
        rates = self.rates[1:] or self.rates
        return round(float(sorted(rates)[len(rates) // 2]), 1) if rates else None
