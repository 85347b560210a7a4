"""``drywallqa quickstart``: the main job on built-in defaults.

Renders the sample data, inspects it, segments its validation images with the shipped model
(cracks with "segment crack", joints with "segment taping area"), and writes masks, overlays, QA
figures and an HTML report. Each prediction is scored against the generator's exact mask: its
IoU, and whether its verdict (pass, fail, not found, unchecked: see ``drywallqa.qa.rules``) is the
one the same QA rules give the exact mask (the wrong ones are listed). Everything goes into one
output folder; rerunning resumes.
"""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="generate the sample data and run the pipeline on it with built-in defaults"
    )
    parser.add_argument("out", nargs="?", default="drywallqa-quickstart", help="output folder (default ./drywallqa-quickstart)")
    parser.add_argument("--images", type=int, default=100, help="sample images to generate (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model to segment with (default: the shipped model)")
    parser.set_defaults(handler=run_quickstart)


def run_quickstart(args: argparse.Namespace) -> int:
    from pathlib import Path

    from drywallqa.data import AnnotatedDataset, PromptConfig
    from drywallqa.data.inspection import inspect_dataset, render_inspection
    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.inference import load_predictor
    from drywallqa.serving import predict_images, write_report
    from drywallqa.serving.results import counts_line
    from drywallqa.serving.truth import attach_truth, sample_data_truths

    out = Path(args.out)
    print(f"[1/4] generating {args.images} sample images in {out / 'data'}")
    paths = generate_sample_data(out / "data", images=args.images, seed=args.seed)
    print("[2/4] inspecting them")
    datasets = [AnnotatedDataset.load(p) for p in paths.dataset_roots]
    render_inspection([inspect_dataset(ds) for ds in datasets])

    print("[3/4] segmenting the validation images with the shipped model" if args.model is None else f"[3/4] segmenting with {args.model}")
    predictor = load_predictor(args.model)
    prompts = PromptConfig.default()
    truths = sample_data_truths(paths.root, "valid")
    for ds in datasets:
        (class_name,) = ds.class_names
        prompt = prompts.resolve(class_name).prompt
        images = [str(s.image_path) for s in ds.split("valid")]
        run = predict_images(images, [prompt], out / "predictions" / ds.name, predictor, model_id=args.model or "shipped")
        counts = counts_line(run.photo_verdict_counts())  # one prompt a photo: the photos' verdicts are the masks'
        scores = attach_truth(out / "predictions" / ds.name, truths)
        scored = "".join(f"; {scores.describe(name)}" for name in scores.scored)
        print(f"  {ds.name}: {len(run.records)} images with {prompt!r}: {counts}{scored}")
        for image, verdict, true_verdict in scores.wrong:
            print(f"    {image}: {verdict}, its exact mask {true_verdict}")

    print("[4/4] writing the reports")
    for ds in datasets:
        report = write_report(out / "predictions" / ds.name, out / f"report-{ds.name}.html")
        print(f"  {report}")
    print(f"done: open {out / 'report-cracks.html'} in a browser")
    return 0
