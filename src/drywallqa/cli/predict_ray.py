"""``drywallqa predict --engine ray``: the flags and the handler of the Ray engine."""

from __future__ import annotations

import argparse


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--address``, ``--workers``, ``--worker-cpus``, ``--worker-gpus``, ``--ray-batch-size``."""
    group = parser.add_argument_group("engine", "where the photos are predicted")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process; ray: a pool of Ray workers (Ray Data), on --address or a local "
                       "Ray; inputs may then be fsspec URLs (s3://, gs://, file://) (default local)")
    group.add_argument("--address", metavar="HOST:PORT", help="Ray head of a running cluster, or auto (default: "
                       "start a local Ray)")
    group.add_argument("--workers", type=int, metavar="N", help="Ray workers (default: the cluster's CPUs / --worker-cpus)")
    group.add_argument("--worker-cpus", type=float, default=1, metavar="N", help="CPUs (torch threads) per Ray worker (default 1)")
    group.add_argument("--worker-gpus", type=float, default=0, metavar="N", help="GPUs per Ray worker; fractions share one (default 0)")
    group.add_argument("--ray-batch-size", type=int, default=8, metavar="N", help="photos per Ray batch (default 8)")


def run_predict_ray(args: argparse.Namespace) -> int:
    """Run ``predict`` on Ray with the parsed arguments and print what it did."""
    from drywallqa.cli.common import model_args
    from drywallqa.data import PromptConfig
    from drywallqa.serving import QAThresholds
    from drywallqa.serving.ray_engine import predict_on_ray

    options = {"threshold": args.threshold, "tta": args.tta, "model_args": model_args(args) or None}
    if args.device:
        options["device"] = args.device
    run = predict_on_ray(
        args.images, args.prompt, args.out, model=args.model, predictor_options=options,
        model_id=args.model or "default", mm_per_px=args.mm_per_px, thresholds=QAThresholds.load(args.thresholds),
        prompt_config=PromptConfig.from_yaml(args.prompts) if args.prompts else None, address=args.address,
        workers=args.workers, worker_cpus=args.worker_cpus, worker_gpus=args.worker_gpus,
        batch_size=args.ray_batch_size, progress=args.progress,
    )
    verdicts = run.verdict_counts()
    print(f"{run.images} image(s), {len(run.records)} mask(s) on Ray: {run.predicted} predicted, "
          f"{run.resumed} already done; {verdicts['fail']} fail, {verdicts['pass']} pass, {verdicts['unchecked']} unchecked")
    if run.issues:
        print(f"skipped {len(run.issues)} image(s) (listed in {run.files['summary']})")
    print(f"wrote {run.files['jsonl']}, {run.files['csv'].name}, {run.files['coco'].name} in {run.out}")
    return 0
