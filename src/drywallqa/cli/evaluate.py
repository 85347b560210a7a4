"""``drywallqa evaluate``: score a model on annotated datasets (tables, JSON, Markdown, plots)."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="IoU/Dice per class (per-image and pooled), prompt fidelity, paraphrase robustness",
        description="Evaluate a model on one split of annotated datasets. Truth is the annotated shapes, or the "
        "filled boxes for box-only classes; pseudo-masks are never truth.",
    )
    parser.add_argument("--model", metavar="M", default=None, help="model name or checkpoint (default: the shipped model)")
    parser.add_argument("--data", nargs="+", required=True, metavar="D", help="dataset folders (COCO, YOLO or mask folders)")
    parser.add_argument("--split", default="valid", help="split to report (default valid)")
    thresholds = parser.add_mutually_exclusive_group()
    thresholds.add_argument("--threshold", type=float, default=0.5, metavar="T", help="probability threshold (default 0.5)")
    thresholds.add_argument(
        "--sweep", metavar="SPLIT",
        help="choose the threshold maximising mean IoU on SPLIT (must differ from --split), then report --split at it",
    )
    parser.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    parser.add_argument("--out", metavar="DIR", help="write report.md, report.json and PNG plots into DIR")
    parser.add_argument("--max-images", type=int, metavar="N", help="at most N images per class (quick check)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="images per prediction batch (default 8)")
    parser.add_argument("--device", help="torch device for the model (default: the predictor's choice)")
    parser.add_argument("--prompts", metavar="YAML", help="prompt config (default: the built-in prompts.yaml)")
    parser.add_argument("--strict", action="store_true", help="fail (exit 2) at the first bad dataset entry instead of skipping it")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from drywallqa.data import AnnotatedDataset, PromptConfig
    from drywallqa.evaluation import evaluate
    from drywallqa.inference import load_predictor  # lazy: pulls in the model stack

    datasets = [AnnotatedDataset.load(path, strict=args.strict) for path in args.data]
    predictor = load_predictor(args.model, device=args.device)
    report = evaluate(
        predictor, datasets, split=args.split, threshold=args.threshold, sweep_split=args.sweep,
        prompt_config=PromptConfig.from_yaml(args.prompts) if args.prompts else None,
        batch_size=args.batch_size, max_images=args.max_images, progress=args.progress,
    )
    report.render()
    if args.json:
        print(f"wrote {report.to_json(args.json)}")
    if args.out:
        written = report.write(args.out)
        print(f"wrote {written['markdown']}, {written['json']} and {len(written['plots'])} plot(s) in {args.out}")
    return 0
