"""``drywallqa bench``: PromptUNet on every available runtime beside CLIPSeg and SAM, in one run."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="latency, throughput and memory of PromptUNet runtimes vs CLIPSeg and SAM, plus the JPEG-to-PNG pipeline",
        description="Measure, in one run on this machine: batch-1 latency p50/p95 and best-batch throughput and peak "
        "memory of PromptUNet-lite0 (448 px) on each available runtime, CLIPSeg rd64 (352 px) and SAM ViT-B (1024 px) "
        "with random weights, and the end-to-end JPEG -> mask PNG pipeline. SAM takes seconds per image on a CPU; the "
        "full run takes a few minutes there.",
    )
    parser.add_argument("--json", metavar="FILE", help="write the raw results as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write a Markdown report (e.g. docs/performance.md)")
    parser.add_argument("--quick", action="store_true", help="tiny models and sizes, few calls (a smoke test; numbers mean nothing)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    parser.add_argument("--runtimes", metavar="R,R", help="comma-separated PromptUNet runtimes (default: all for the device; "
                        "torch-compile-fp32 is opt-in on CPU)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch and ONNX Runtime threads (default: available cores)")
    parser.add_argument("--image-size", type=int, metavar="S", help="PromptUNet input side (default 448)")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false", help="skip CLIPSeg and SAM")
    parser.add_argument("--note", default="", help="conditions to record in the report, e.g. 'beside a training run'")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="time budget: measurements that would start after "
                        "it are skipped (with --json, the file is rewritten after every measurement, so a run stopped "
                        "from outside keeps what it measured)")
    parser.add_argument("--no-end-to-end", dest="end_to_end", action="store_false",
                        help="skip the end-to-end section (predict over a folder, serve under load)")
    parser.add_argument("--e2e-photos", metavar="DIR", help="photos for the end-to-end predict run "
                        "(default: synthetic 640x640 photos)")
    parser.add_argument("--e2e-images", type=int, metavar="N", help="photos predict goes through (default 200)")
    parser.add_argument("--serve-seconds", type=float, metavar="S",
                        help="seconds of scripts/loadtest.py load per server (default 60; 0 skips serve)")
    parser.add_argument("--serve-baseline", metavar="REV", help="git revision of the server to compare with "
                        "(default: this code with the previous defaults: PyTorch, one request at a time)")
    parser.add_argument("--from-json", metavar="FILE", help="measure nothing: render a report from the JSON of an earlier run")
    parser.set_defaults(handler=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from drywallqa.bench import BenchReport, BenchSettings, run_benchmark, write_report
    from drywallqa.files import read_json

    if args.from_json:
        data = read_json(args.from_json)
        command = data.pop("command", "drywallqa bench")
        report = BenchReport.from_dict(data)
        for path in write_report(report, args.json, args.markdown, command):
            print(f"wrote {path}")
        if not args.json and not args.markdown:
            print(report.markdown(command))
        return 0
    _check_end_to_end_args(args)
    overrides = {"baselines": args.baselines, "note": args.note, "end_to_end": args.end_to_end}
    for field_name, value in (("e2e_photos", args.e2e_photos), ("e2e_images", args.e2e_images),
                              ("serve_seconds", args.serve_seconds), ("serve_baseline_rev", args.serve_baseline)):
        if value is not None:
            overrides[field_name] = value
    if args.runtimes:
        overrides["runtimes"] = tuple(r.strip() for r in args.runtimes.split(",") if r.strip())
    if args.threads:
        overrides["threads"] = args.threads
    if args.image_size:
        overrides["image_size"] = args.image_size
    if args.max_seconds:
        overrides["max_seconds"] = args.max_seconds
    settings = BenchSettings.create(quick=args.quick, device=args.device, **overrides)
    command = _command_line(args)

    def checkpoint(partial: BenchReport) -> None:
        write_report(partial, args.json, None, command)

    report = run_benchmark(settings, progress=print, checkpoint=checkpoint if args.json else None)
    for path in write_report(report, args.json, args.markdown, command):
        print(f"wrote {path}")
    if not args.json and not args.markdown:
        print(report.markdown(command))
    return 0


def _check_end_to_end_args(args: argparse.Namespace) -> None:
    """Refuse a missing photo folder or an unknown git revision now, not after minutes of measuring."""
    import subprocess
    from pathlib import Path

    from drywallqa.bench.end_to_end import loadtest_script
    from drywallqa.errors import ConfigError

    if args.e2e_photos and not Path(args.e2e_photos).is_dir():
        raise ConfigError(f"--e2e-photos {args.e2e_photos}: no such folder")
    if args.serve_baseline:
        script = loadtest_script()
        found = script is not None and subprocess.run(
            ["git", "-C", str(script.parent), "rev-parse", "--verify", "--quiet", f"{args.serve_baseline}^{{commit}}"],
            capture_output=True).returncode == 0
        if not found:
            raise ConfigError(f"--serve-baseline {args.serve_baseline}: not a commit of this source checkout")


def _command_line(args: argparse.Namespace) -> str:
    """The command as a user would type it, for the report."""
    parts = ["drywallqa bench"]
    for flag, value in (("--quick", args.quick), ("--device", args.device), ("--runtimes", args.runtimes),
                        ("--threads", args.threads), ("--image-size", args.image_size),
                        ("--no-baselines", not args.baselines), ("--max-seconds", args.max_seconds),
                        ("--no-end-to-end", not args.end_to_end), ("--e2e-photos", args.e2e_photos),
                        ("--e2e-images", args.e2e_images), ("--serve-seconds", args.serve_seconds),
                        ("--serve-baseline", args.serve_baseline),
                        ("--json", args.json), ("--markdown", args.markdown)):
        if value is True:
            parts.append(flag)
        elif value:
            parts.append(f"{flag} {value}")
    if args.note:
        parts.append(f"--note {args.note!r}")
    return " ".join(parts)
