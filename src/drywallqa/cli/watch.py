"""``drywallqa watch``: segment a video file, camera or stream frame by frame."""

from __future__ import annotations

import argparse
import sys

from drywallqa.cli.common import add_model_args, add_qa_rules_args, add_tile_arg


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="segment every frame of a video file, camera or RTSP/HTTP stream; annotated MP4, per-frame JSONL, events",
        description="Segment every frame with every prompt on the fastest runtime this machine offers, smoothing the "
        "mask logits over time. Writes annotated.mp4, frames.jsonl (figures, verdict, confidence per frame), "
        "events.jsonl (a QA rule failing for --fail-frames frames in a row) and watch.json (frames read, "
        "segmented, dropped; frames/s) into --out. Cameras and streams never wait for the model: frames it "
        "cannot take are dropped, counted and listed. Ctrl-C ends the run with complete outputs.",
    )
    parser.add_argument("source", metavar="SOURCE", help="video file, camera index (0), or rtsp:// / http(s):// stream URL")
    parser.add_argument("--prompt", action="append", required=True, metavar="TEXT",
                        help="prompt, e.g. 'segment crack'; repeat for more prompts")
    add_model_args(parser)
    parser.add_argument("--out", metavar="DIR", default="drywallqa-watch", help="output folder (default drywallqa-watch)")
    parser.add_argument("--image-size", type=int, metavar="S", help="model input side (default: the model's own); "
                        "smaller is faster")
    parser.add_argument("--threshold", type=float, metavar="T",
                        help="mask probability threshold for every prompt (default: the model's calibrated per-class thresholds, else 0.5)")
    parser.add_argument("--smoothing", type=float, default=0.5, metavar="A",
                        help="weight of the newest frame in the moving average of the logits, in (0, 1]; 1 is off "
                        "(default 0.5)")
    parser.add_argument("--fail-frames", type=int, default=5, metavar="N",
                        help="consecutive failing frames that make an event (default 5)")
    parser.add_argument("--mm-per-px", type=float, metavar="F", help="image scale in millimetres per pixel")
    add_tile_arg(parser)
    add_qa_rules_args(parser)
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                        help="drop frames the model cannot take instead of waiting (default: on for cameras and "
                        "streams, off for files; --live replays a file at its frame rate, as a camera would)")
    parser.add_argument("--queue", type=int, default=8, metavar="N", help="frames waiting for the model at most (default 8)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="longest wait to open or read a stream (default 10)")
    parser.set_defaults(handler=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    from drywallqa.cli.common import load_model_predictor, load_qa_rules
    from drywallqa.qa.figures import check_mm_per_px
    from drywallqa.serving.video import watch
    from drywallqa.serving.video_source import VideoSource

    qa_rules, prompt_config = load_qa_rules(args)  # a typo in a rules file fails before anything opens
    scale_warning = check_mm_per_px(args.mm_per_px, "--mm-per-px")  # before the source opens or the model loads
    if scale_warning:
        print(f"warning: {scale_warning}", file=sys.stderr)
    # Open the source first: a wrong address fails before a model is loaded or exported.
    source = VideoSource(args.source, args.timeout)
    try:
        options = {"threshold": args.threshold, **({"image_size": args.image_size} if args.image_size else {})}
        # --runtime auto (the default): the fastest runtime here, chosen and printed by load_predictor.
        predictor = load_model_predictor(args, say=print, **options)
        print(f"watching {source!r} with {predictor.name}")
        run = watch(
            source, args.prompt, args.out, predictor, smoothing=args.smoothing, fail_frames=args.fail_frames,
            mm_per_px=args.mm_per_px, qa_rules=qa_rules, prompt_config=prompt_config, live=args.live,
            queue_size=args.queue, max_frames=args.max_frames, max_seconds=args.duration, timeout_s=args.timeout,
            say=print,
        )
    finally:
        source.close()
    print(f"{run.frames_read} frame(s) read, {run.frames_processed} segmented, {run.frames_dropped} dropped, "
          f"{len(run.events)} event(s){' (interrupted)' if run.interrupted else ''}")
    print(run.speed_line())
    print(f"wrote {', '.join(p.name for p in run.files.values())} in {run.out}")
    return 0
