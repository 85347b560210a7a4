"""``drywallqa predict``: masks, overlays, QA figures and verdicts for image files."""

from __future__ import annotations

import argparse

from drywallqa.cli.common import add_model_args, add_qa_rules_args, add_tile_arg, load_model_predictor, load_qa_rules
from drywallqa.cli.predict_ray import add_engine_args, ray_engine


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images with text prompts; write masks, overlays, QA figures (JSONL, CSV) and COCO",
        description="Segment every image with every prompt. Writes masks/, overlays/, records/, results.jsonl, "
        "results.csv, coco.json (RLE, for CVAT / Label Studio), summary.json and run.json into --out. A rerun with "
        "the same model (and weights), runtime, threshold, --tta and prompts skips image/prompt pairs whose outputs "
        "exist; with other ones it is refused unless --overwrite. Unreadable, too small or too large images are "
        "reported and skipped.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGES", help="image files, folders of images, or glob patterns")
    parser.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                        help="prompt, e.g. 'segment crack'; repeat for more prompts")
    add_model_args(parser)
    parser.add_argument("--out", metavar="DIR", default="drywallqa-predictions",
                        help="output folder; must not be or contain an input (default drywallqa-predictions)")
    parser.add_argument("--mm-per-px", type=float, metavar="F", help="image scale in millimetres per pixel: adds mm figures and mm rules")
    add_tile_arg(parser)
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="mask probability threshold for every prompt (default: the model's calibrated per-class thresholds, else 0.5)")
    add_qa_rules_args(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="predict every image again when --out holds masks made with other settings (run.json)")
    parser.add_argument("--no-overlays", dest="overlays", action="store_false",
                        help="no overlays/ (masks, records and tables only)")
    parser.add_argument("--no-coco", dest="coco", action="store_false", help="no coco.json")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="photos in flight at once: decoded, waiting for the model or being written "
                        "(default: twice the batch size, at least 8); bounds memory")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_engine_args(parser)
    parser.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from drywallqa.inference import check_prompt
    from drywallqa.qa.figures import check_mm_per_px
    from drywallqa.serving import predict_images
    from drywallqa.serving.inputs import check_output_dir, collect_images
    from drywallqa.serving.predict import read_run_file
    from drywallqa.serving.results import counts_line

    # Everything a typo can break is checked before the model loads (seconds on a CPU).
    qa_rules, prompt_config = load_qa_rules(args)
    for prompt in args.prompt:
        check_prompt(prompt)
    check_mm_per_px(args.mm_per_px, "--mm-per-px")  # refused here; an unusual one is warned about by the run
    if args.engine == "local":  # Ray's inputs may be URIs its workers read
        check_output_dir(args.out, collect_images(args.images), args.images)
    if not args.overwrite:
        read_run_file(args.out)  # a corrupt run.json is refused before the model loads
    predictor = load_model_predictor(args, threshold=args.threshold) if args.engine == "local" else None
    run = (predict_images if predictor else ray_engine(args))(
        args.images, args.prompt, args.out, predictor, model_id=args.model or "default", mm_per_px=args.mm_per_px,
        qa_rules=qa_rules, prompt_config=prompt_config, progress=args.progress,
        overwrite=args.overwrite, overlays=args.overlays, coco=args.coco, workers=args.workers,
    )
    # The photos' verdicts first: what an inspector acts on; then the masks (one per photo and prompt).
    print(f"photos: {counts_line(run.photo_verdict_counts())}")
    print(f"{run.images} image(s), {len(run.records)} mask(s): {run.predicted} predicted, {run.resumed} already done; "
          f"masks: {counts_line(run.verdict_counts())}")
    if run.issues:
        print(f"skipped {len(run.issues)} image(s): {_counts(run.issues.counts())} (listed in {run.files['summary']})")
    print(f"wrote {run.files['jsonl']}, {', '.join(run.files[k].name for k in ('csv', 'coco') if k in run.files)} in {run.out}")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items())
