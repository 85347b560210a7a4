"""``drywallqa evaluate``: score a model on annotated datasets (tables, JSON, Markdown, plots)."""

from __future__ import annotations

import argparse

from drywallqa.cli.common import add_model_args, load_model_predictor


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="IoU/Dice per class (per-image and pooled), prompt fidelity, paraphrase robustness",
        description="Evaluate a model on one split of annotated datasets. Truth is the annotated shapes, or the "
        "filled boxes for box-only classes; pseudo-masks are never truth. The report says how many scored source "
        "groups the model was trained on (leakage), from its training.json, or that this is unknown.",
    )
    add_model_args(parser)
    parser.add_argument("--data", nargs="+", required=True, metavar="D", help="dataset folders (COCO, YOLO or mask folders)")
    parser.add_argument("--split", default="valid", help="split to report (default valid)")
    thresholds = parser.add_mutually_exclusive_group()
    thresholds.add_argument("--threshold", type=float, metavar="T", help="probability threshold for every class (default: "
                            "the model's calibrated per-class thresholds, from its calibration.json, else 0.5)")
    thresholds.add_argument(
        "--sweep", metavar="SPLIT",
        help="choose the threshold maximising mean IoU on SPLIT (must differ from --split), then report --split at it",
    )
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--out", metavar="DIR", help="write report.md, report.json and PNG plots into DIR")
    parser.add_argument("--max-images", type=int, metavar="N", help="at most N images per class (quick check)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="images per prediction batch (default 8)")
    parser.add_argument("--prompts", metavar="YAML", help="prompt config (default: the built-in prompts.yaml)")
    parser.add_argument(
        "--splits-from", metavar="RUN", help="use the splits of a training run's training set (its model folder, "
        "training.json or a trainset YAML): e.g. --split test scores the source groups held out of training, "
        "--sweep valid picks the threshold on its validation groups; also the model's training set for the leakage "
        "line when the model records none (an exported .onnx file)",
    )
    parser.add_argument("--strict", action="store_true", help="fail (exit 2) at the first bad dataset entry instead of skipping it")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(handler=run_evaluate)

    calibrate = subparsers.add_parser(
        "calibrate",
        help="choose each class's mask threshold on the model's validation groups and store it in the model folder",
        description="Sweep the mask threshold of every class on the validation source groups of the model's own "
        "training run (--splits-from the model folder, --split valid: never a reported split) and write the best "
        "ones into MODEL/calibration.json, which predict, serve and evaluate use by default.",
    )
    calibrate.add_argument("--model", required=True, metavar="DIR", help="a model folder (config.json + model.safetensors)")
    calibrate.add_argument("--data", nargs="+", required=True, metavar="D", help="the dataset folders it was trained on")
    calibrate.add_argument("--splits-from", metavar="RUN", help="training run whose splits to use (default: --model)")
    calibrate.add_argument("--split", default="valid", help="split to choose on (default valid)")
    calibrate.add_argument("--out", metavar="FILE", help="where to write (default MODEL/calibration.json)")
    calibrate.add_argument("--device", help="torch device (default: CUDA when available)")
    calibrate.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    calibrate.set_defaults(handler=run_calibrate)


def run_evaluate(args: argparse.Namespace) -> int:
    from drywallqa.data import AnnotatedDataset, PromptConfig
    from drywallqa.evaluation import evaluate
    from drywallqa.files import ensure_writable

    if args.json:
        ensure_writable(args.json, folder=False)
    if args.out:
        ensure_writable(args.out)
    published = [AnnotatedDataset.load(path, strict=args.strict) for path in args.data]
    datasets = published
    if args.splits_from:
        from drywallqa.trainsets import resplit_like_training

        datasets = resplit_like_training(published, args.splits_from)
    prompt_config = PromptConfig.from_yaml(args.prompts) if args.prompts else None  # a typo fails before the model loads
    training = model_training_groups(args.model, published, args.splits_from)
    predictor = load_model_predictor(args)
    report = evaluate(
        predictor, datasets, split=args.split, threshold=args.threshold, sweep_split=args.sweep,
        prompt_config=prompt_config,
        batch_size=args.batch_size, max_images=args.max_images, progress=args.progress, training=training,
    )
    report.render()
    if args.json:
        print(f"wrote {report.to_json(args.json)}")
    if args.out:
        written = report.write(args.out)
        print(f"wrote {written['markdown']}, {written['json']} and {len(written['plots'])} plot(s) in {args.out}")
    return 0


def model_training_groups(model: str | None, datasets, splits_from: str | None = None):
    """The source groups of ``datasets`` a ``--model`` was trained on, for the report's leakage line.

    Read from ``training.json`` in the model folder (the shipped one for None), else from the
    ``--splits-from`` run's (the run that trained an exported file); unknown, with the reason,
    when neither says or the datasets are not the ones it records.

    Returns:
        A :class:`~drywallqa.evaluation.TrainingGroups`.
    """
    import json
    from pathlib import Path

    from drywallqa.errors import DrywallQAError
    from drywallqa.evaluation import TrainingGroups
    from drywallqa.inference import default_model_path
    from drywallqa.trainsets import training_groups

    record = Path(str(default_model_path()) if model is None else model) / "training.json"
    name = "the shipped model's training.json" if model is None else str(record)
    if not record.is_file():
        if not splits_from:
            return TrainingGroups.unknown(f"the model {model} records no training set (no training.json beside it)")
        record = Path(splits_from) / "training.json" if Path(splits_from).is_dir() else Path(splits_from)
        name = f"--splits-from {splits_from}, as the model records no training set"
    try:
        groups = training_groups(datasets, record)
    except DrywallQAError as error:
        return TrainingGroups.unknown(str(error))
    earlier = len(json.loads(record.read_text(encoding="utf-8")).get("earlier_stages", [])) if record.suffix == ".json" else 0
    if earlier:  # fine-tuned from earlier stages, whose training sets are not recorded
        name += f" (its last stage's training set; {earlier} earlier stage(s) record none)"
    return TrainingGroups(name, groups["train"], groups["valid"])


def run_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from drywallqa.data import AnnotatedDataset
    from drywallqa.evaluation import calibrate_thresholds
    from drywallqa.inference import CALIBRATION_FILE, load_predictor, write_calibration
    from drywallqa.trainsets import resplit_like_training

    out = Path(args.out) if args.out else Path(args.model) / CALIBRATION_FILE
    datasets = resplit_like_training([AnnotatedDataset.load(path) for path in args.data], args.splits_from or args.model)
    sweep = calibrate_thresholds(load_predictor(args.model, device=args.device, threshold=0.5), datasets,
                                 split=args.split, progress=args.progress)
    write_calibration(out, sweep, command=f"drywallqa calibrate --model {args.model} --data {' '.join(args.data)}")
    for name, threshold in sorted(sweep.chosen_per_class.items()):
        iou = sweep.per_class[name][sweep.thresholds.index(threshold)]
        print(f"{name}: threshold {threshold:g} (per-image mean IoU {iou:.4f} on {sweep.images} images of {args.split!r})")
    print(f"wrote {out}")
    return 0
