"""``drywallqa quickstart``: the main job on built-in defaults."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="generate the sample data and run the pipeline on it with built-in defaults"
    )
    parser.add_argument("out", nargs="?", default="drywallqa-quickstart", help="output folder (default ./drywallqa-quickstart)")
    parser.add_argument("--images", type=int, default=100, help="sample images to generate (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=run_quickstart)


def run_quickstart(args: argparse.Namespace) -> int:
    from pathlib import Path

    from drywallqa.data import AnnotatedDataset
    from drywallqa.data.inspection import inspect_dataset, render_inspection
    from drywallqa.data.synthetic import generate_sample_data

    out = Path(args.out)
    print(f"[1/2] generating {args.images} sample images in {out / 'data'}")
    paths = generate_sample_data(out / "data", images=args.images, seed=args.seed)
    print("[2/2] inspecting them")
    datasets = [AnnotatedDataset.load(p) for p in paths.dataset_roots]
    render_inspection([inspect_dataset(ds) for ds in datasets])
    return 0
