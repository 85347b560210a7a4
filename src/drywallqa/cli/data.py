"""``drywallqa data inspect`` and ``drywallqa data split``."""

from __future__ import annotations

import argparse
import json
import sys

from drywallqa.files import atomic_write_json


def add_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect and split datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    inspect = data_sub.add_parser(
        "inspect", help="counts per dataset and split, and source groups shared between splits"
    )
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="dataset folders (COCO, YOLO or mask folders)")
    inspect.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (stdout if no FILE)")
    _add_loading_args(inspect)
    inspect.set_defaults(handler=run_inspect)

    split = data_sub.add_parser("split", help="seeded split that keeps each source group in one split")
    split.add_argument("paths", nargs="+", metavar="PATH", help="dataset folders, pooled before splitting")
    split.add_argument("--fractions", default="0.8,0.1,0.1", help="train,valid,test shares or name=share,... (default 0.8,0.1,0.1)")
    split.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    split.add_argument("--out", metavar="CSV", help="write the manifest (image, dataset, group, original_split, split) here")
    _add_loading_args(split)
    split.set_defaults(handler=run_split)

    add_sample_data_command(subparsers)


def add_sample_data_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample-data", help="render synthetic drywall photos with exact masks, in Roboflow COCO layout"
    )
    parser.add_argument("out", help="output folder (created; a previous sample-data output is regenerated)")
    parser.add_argument("--images", type=int, default=100, help="images over both datasets (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes (default 0)")
    parser.add_argument("--size", type=int, default=384, help="image side in pixels (default 384)")
    parser.add_argument("--crack-fraction", type=float, default=0.5, help="share of images in the crack dataset (default 0.5)")
    parser.set_defaults(handler=run_sample_data)


def run_sample_data(args: argparse.Namespace) -> int:
    from drywallqa.data.synthetic import generate_sample_data

    paths = generate_sample_data(
        args.out, images=args.images, seed=args.seed, size=args.size, crack_fraction=args.crack_fraction, progress=True
    )
    for name, counts in paths.image_counts.items():
        print(f"{name}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))
    print(f"wrote {paths.total_images} images to {paths.root}")
    return 0


def _add_loading_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="fail (exit 2) at the first bad entry instead of skipping it")
    parser.add_argument("--no-verify-images", dest="verify_images", action="store_false", help="skip decoding every image (faster)")


def load_datasets(args: argparse.Namespace):
    from drywallqa.data import AnnotatedDataset

    return [AnnotatedDataset.load(p, strict=args.strict, verify_images=args.verify_images) for p in args.paths]


def run_inspect(args: argparse.Namespace) -> int:
    from drywallqa.data.inspection import inspect_dataset, inspection_to_dict, render_inspection

    inspections = [inspect_dataset(ds) for ds in load_datasets(args)]
    if args.json == "-":
        json.dump(inspection_to_dict(inspections), sys.stdout, indent=2)
        print()
        return 0
    render_inspection(inspections)
    if args.json:
        atomic_write_json(args.json, inspection_to_dict(inspections), indent=2)
        print(f"wrote {args.json}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from rich.table import Table

    from drywallqa.console import get_console
    from drywallqa.data.splitting import group_split

    result = group_split(load_datasets(args), args.fractions, args.seed)
    table = Table(title=f"Group split (seed {args.seed})")
    for col in ("split", "share", "images", "groups"):
        table.add_column(col, justify="left" if col == "split" else "right")
    images, groups, total = result.images_per_split, result.groups_per_split, len(result.samples)
    for name, frac in result.fractions.items():
        table.add_row(name, f"{frac:.2f} → {images[name] / max(total, 1):.2f}", str(images[name]), str(groups[name]))
    get_console().print(table)
    print(f"groups in more than one split: {len(result.leaked_groups())}")
    if args.out:
        result.write_csv(args.out)
        print(f"wrote {args.out}")
    return 0
