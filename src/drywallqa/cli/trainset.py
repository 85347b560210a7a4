"""``drywallqa trainset build``: combine datasets into one leak-free training set and check it."""

from __future__ import annotations

import argparse

# CLI flag -> config field, for the flags that map one to one.
_FIELD_FLAGS = {
    "fractions": "fractions", "seed": "seed", "keep_splits": "keep_splits",
    "drop_leaked_from_train": "drop_leaked_from_train", "balance_ratio": "balance_ratio",
    "negative_rate": "negative_rate", "negative_splits": "negative_splits",
    "augment_originals": "augment_originals", "prompt_config": "prompt_config", "image_size": "image_size",
    "verify_images": "verify_images",
}


def add_commands(subparsers) -> None:
    trainset = subparsers.add_parser("trainset", help="build training sets without leakage")
    sub = trainset.add_subparsers(dest="trainset_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser(
        "build",
        help="split by source group, balance classes in train, add cross-prompt negatives, check for leakage",
        description="Every flag overrides the field of the same name in CONFIG (configs/trainset-default.yaml "
        "lists them all); --set FIELD=VALUE reaches any other field, e.g. augmentation.rotate_limit=20.",
    )
    build.add_argument("config", nargs="?", metavar="CONFIG", help="trainset YAML (built-in defaults if omitted)")
    build.add_argument("--data", action="append", metavar="DIR", help="dataset folder, or a folder of datasets (repeatable)")
    build.add_argument("--joint-masks", metavar="box|DIR", help="taping-area targets: filled boxes, or a `drywallqa masks` output")
    build.add_argument("--mask-source", action="append", metavar="CLASS=box|DIR", help="target of any box-only class (repeatable)")
    build.add_argument("--fractions", help="split shares, e.g. 0.8,0.1,0.1 or train=0.9,valid=0.1")
    build.add_argument("--seed", type=int)
    build.add_argument("--keep-splits", action=argparse.BooleanOptionalAction, default=None,
                       help="respect the published splits (carve valid out of published train)")
    build.add_argument("--drop-leaked-from-train", action=argparse.BooleanOptionalAction, default=None,
                       help="with --keep-splits: drop groups shared with another published split from train")
    build.add_argument("--balance-ratio", type=_ratio, metavar="R|none", help="minority/majority target in train (none: off)")
    build.add_argument("--negative-rate", type=float, metavar="R", help="share of cross-prompt negatives per split")
    build.add_argument("--negative-splits", metavar="S,S", help="splits that get negatives (default train)")
    build.add_argument("--augment-originals", action=argparse.BooleanOptionalAction, default=None,
                       help="augment original train items too, not only the balancing copies")
    build.add_argument("--prompt-config", metavar="YAML", help="prompt classes (built-in if omitted)")
    build.add_argument("--image-size", type=int, metavar="S", help="square model input side")
    build.add_argument("--verify-images", action=argparse.BooleanOptionalAction, default=None,
                       help="decode every image while loading")
    build.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any field (YAML value)")
    build.add_argument("--materialize", metavar="OUT", help="write images, mask PNGs and manifest.csv to OUT (resumable)")
    build.add_argument("--save-config", metavar="YAML", help="write the effective config here")
    build.set_defaults(handler=run_build)

    from drywallqa.trainsets.pack import DEFAULT_MAX_MIB, IMAGE_FORMATS

    pack = sub.add_parser(
        "pack",
        help="pack a training config's data, prompt embeddings and pretrained weights into one checksummed folder",
        description="Write what `drywallqa train --pack OUT` needs, for a machine without the datasets or the weights "
        "packages (a lent GPU, see docs/gpu.md): the images of the carved splits at native resolution (the original "
        "files when they fit --max-mib, else WebP at the highest quality that fits), their annotations, the embeddings "
        "of every prompt and the pretrained encoder weights. Built in a temporary folder and checked against the "
        "source before it is renamed to OUT.",
    )
    pack.add_argument("--config", metavar="YAML", help="the training config the pack is for (its data and model sections), "
                      "e.g. configs/device.yaml; built-in defaults if omitted")
    pack.add_argument("--data", action="append", metavar="DIR", help="dataset folder or a root of several (repeatable)")
    pack.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any training config field")
    pack.add_argument("--out", required=True, metavar="DIR", help="the pack folder, e.g. .device/pack")
    pack.add_argument("--image-format", choices=IMAGE_FORMATS, default="auto",
                      help="auto: original files when they fit, else WebP (default)")
    pack.add_argument("--quality", type=int, metavar="Q", help="WebP quality 1-100 (default: the highest that fits)")
    pack.add_argument("--originals", action="append", default=[], metavar="DATASET",
                      help="copy this dataset's files as they are even when the others are re-encoded (repeatable); "
                      "for the photos re-encoding hurts most, e.g. drywall-join (docs/gpu.md)")
    pack.add_argument("--max-mib", type=float, default=DEFAULT_MAX_MIB, metavar="MIB",
                      help=f"size limit of the whole pack (default {DEFAULT_MAX_MIB:g}: a device call carries 64 MiB "
                      "with the repository and the wheels)")
    pack.add_argument("--image-size", type=int, metavar="PX",
                      help="resize every photo to PX x PX (as training at that size does) and encode it as WebP: a pack at "
                      "the training resolution keeps what a recipe trains on at a higher quality in the same bytes")
    pack.add_argument("--split-quality", action="append", default=[], metavar="SPLIT=Q",
                      help="WebP quality of one carved split's photos (repeatable), e.g. valid=95 test=50; the others get "
                      "the highest quality that fits what is left")
    pack.add_argument("--pretrained-for", action="append", default=[], metavar="YAML",
                      help="also carry the pretrained encoder weights another recipe trained from this pack starts from "
                      "(repeatable; e.g. configs/device-lite2.yaml)")
    pack.add_argument("--overwrite", action="store_true", help="replace an existing pack at OUT")
    pack.set_defaults(handler=run_pack)


def _ratio(text: str) -> float | str:
    # "none" survives parsing as a string, so it differs from the flag being absent (None).
    return "none" if text.lower() in {"none", "null", "off"} else float(text)


def config_from_args(args: argparse.Namespace):
    """The effective :class:`TrainSetConfig`: CONFIG (or defaults), then flags, then ``--set``."""
    from drywallqa.trainsets import TrainSetConfig

    config = TrainSetConfig.from_yaml(args.config) if args.config else TrainSetConfig()
    overrides = {field: getattr(args, flag) for flag, field in _FIELD_FLAGS.items() if getattr(args, flag) is not None}
    if overrides.get("balance_ratio") == "none":
        overrides["balance_ratio"] = None
    if args.data:
        overrides["datasets"] = args.data
    sources = dict(config.mask_sources)
    if args.joint_masks:
        from drywallqa.trainsets.config import JOINT_CLASS

        sources[JOINT_CLASS] = args.joint_masks
    for item in args.mask_source or []:
        name, sep, source = item.partition("=")
        if not sep:
            from drywallqa.errors import ConfigError

            raise ConfigError(f"--mask-source {item!r}: expected CLASS=box|DIR, e.g. taping_area=box")
        sources[name.strip()] = source.strip()
    overrides["mask_sources"] = sources
    return config.with_overrides(overrides).with_overrides(args.set)


def run_build(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from drywallqa.trainsets import build_trainset, materialize
    from drywallqa.trainsets.build import describe_sources

    config = config_from_args(args)
    if args.save_config:
        config.to_yaml(args.save_config)
        print(f"wrote {args.save_config}")
    trainset = build_trainset(config)

    table = Table(title=f"Training set (seed {config.seed}, {'published splits kept' if config.keep_splits else 'group split'})")
    for col in ("split", "class", "original", "copies", "negatives", "items"):
        table.add_column(col, justify="left" if col in {"split", "class"} else "right")
    for split, per_class in trainset.counts().items():
        for name, c in per_class.items():
            if c["items"]:
                table.add_row(split, name, str(c["original"]), str(c["copies"]), str(c["negatives"]), str(c["items"]))
    Console().print(table)
    if trainset.published_leaks:
        per_dataset: dict[str, int] = {}
        for group in trainset.published_leaks:
            per_dataset[group.split("/", 1)[0]] = per_dataset.get(group.split("/", 1)[0], 0) + 1
        listed = ", ".join(f"{name}: {n}" for name, n in sorted(per_dataset.items()))
        print(f"published splits share {len(trainset.published_leaks)} source group(s) ({listed})")
    if trainset.dropped_groups:
        print(f"dropped from train: {len(trainset.dropped_groups)} leaked group(s), {trainset.dropped_images} image(s)")
    print("targets: " + ", ".join(f"{source} {n}" for source, n in describe_sources(trainset).items()))
    for note in trainset.notes:
        print(f"note: {note}")
    print(f"train class ratio: {trainset.class_ratio():.3f} (target {config.balance_ratio})")
    print(trainset.check_line())
    if args.materialize:
        print(materialize(trainset, args.materialize, progress=True))
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from drywallqa.cli.train import config_from_args
    from drywallqa.errors import ConfigError
    from drywallqa.training.config import TrainConfig
    from drywallqa.training.pack import build_pack

    config = config_from_args(args)
    others = tuple(TrainConfig.from_yaml(path) for path in args.pretrained_for)
    split_quality = {}
    for item in args.split_quality:
        split, _, value = item.partition("=")
        if not split or not value.isdigit() or not 1 <= int(value) <= 100:
            raise ConfigError(f"--split-quality {item!r}: expected SPLIT=Q with Q from 1 to 100, e.g. valid=95")
        split_quality[split] = int(value)
    summary = build_pack(
        config, args.out, image_format=args.image_format, quality=args.quality, originals=tuple(args.originals),
        max_mib=args.max_mib,
        overwrite=args.overwrite, say=print, image_size=args.image_size, pretrained_for=others,
        split_quality=split_quality or None,
    )
    print(summary)
    return 0
