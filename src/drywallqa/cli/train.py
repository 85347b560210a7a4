"""``drywallqa train``: fit any registered model on a training set built from datasets."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (Lightning: checkpoints, --resume, CSV/TensorBoard logs, DDP)",
        description="Train a text-prompted segmentation model. Every config field can be set with "
        "--set section.field=value (sections: model, data, loss, optim, trainer), e.g. "
        "--set optim.lr=0.001 --set model.args.encoder=lite2 --set data.negative_rate=0.2.",
    )
    parser.add_argument("--config", metavar="YAML", help="training config, e.g. configs/promptunet-lite0.yaml (defaults if omitted)")
    parser.add_argument("--data", action="append", metavar="DIR", help="dataset folder or a root of several (repeatable); sets data.datasets")
    parser.add_argument("--pack", metavar="DIR", help="train from a training pack (`drywallqa trainset pack`) instead of --data (sets pack)")
    parser.add_argument("--out", metavar="DIR", help="run folder (sets out)")
    parser.add_argument("--model", metavar="NAME", help="registered architecture (sets model.name)")
    parser.add_argument("--init-from", metavar="DIR", help="fine-tune a saved model folder, or 'default' for the shipped one (sets model.init_from)")
    parser.add_argument("--epochs", type=int, help="sets trainer.max_epochs")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget (sets trainer.max_minutes)")
    parser.add_argument("--batch-size", type=int, help="sets trainer.batch_size")
    parser.add_argument("--image-size", type=int, help="square input side (sets data.image_size)")
    parser.add_argument("--devices", help="GPUs or CPU processes per node (sets trainer.devices)")
    parser.add_argument("--num-nodes", type=int, help="machines for DDP (sets trainer.num_nodes)")
    parser.add_argument("--accelerator", help="auto, cpu or gpu (sets trainer.accelerator)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any config field")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(handler=run_train)


def config_from_args(args: argparse.Namespace):
    from drywallqa.training.config import TrainConfig

    overrides = []
    shortcuts = {
        "out": "out", "pack": "pack", "model": "model.name", "init_from": "model.init_from", "epochs": "trainer.max_epochs",
        "max_minutes": "trainer.max_minutes",
        "batch_size": "trainer.batch_size", "image_size": "data.image_size", "devices": "trainer.devices",
        "num_nodes": "trainer.num_nodes", "accelerator": "trainer.accelerator",
    }
    # Other commands that take a training config (`trainset pack`) have only some of the flags.
    for attr, field in shortcuts.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides.append(f"{field}={value}")
    if args.data:
        overrides.append("data.datasets=[" + ", ".join(repr(str(d)) for d in args.data) + "]")
    return TrainConfig.from_yaml(args.config, overrides + list(args.set))


def run_train(args: argparse.Namespace) -> int:
    from drywallqa.files import ensure_writable
    from drywallqa.training.run import train

    config = config_from_args(args)
    ensure_writable(config.out)  # before minutes of data preparation and training
    result = train(config, resume=args.resume, progress=args.progress)
    if not result.is_global_zero:
        return 0
    score = "n/a" if result.best_val_iou is None else f"{result.best_val_iou:.4f}"
    print(f"best val IoU {score} after {result.epochs} epoch(s), {result.minutes:.1f} min on {result.hardware}")
    print(f"model: {result.model_dir}   curves: {result.run_dir / 'training_curves.png'}")
    return 0
