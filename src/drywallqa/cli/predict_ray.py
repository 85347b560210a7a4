"""``drywallqa predict --engine ray``: the engine flags, and predict_images run on Ray from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--address``, ``--ray-workers``, ``--worker-cpus``, ``--worker-gpus``, ``--ray-batch-size``."""
    group = parser.add_argument_group("engine", "where the photos are predicted")
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process; ray: a pool of Ray workers (Ray Data), on --address or a local "
                       "Ray; inputs may then be fsspec URLs (s3://, gs://, file://) (default local)")
    group.add_argument("--address", metavar="HOST:PORT", help="Ray head of a running cluster, or auto (default: "
                       "start a local Ray)")
    group.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers (default: the cluster's CPUs / --worker-cpus)")
    group.add_argument("--worker-cpus", type=float, default=1, metavar="N", help="CPUs (torch threads) per Ray worker (default 1)")
    group.add_argument("--worker-gpus", type=float, default=0, metavar="N", help="GPUs per Ray worker; fractions share one (default 0)")
    group.add_argument("--ray-batch-size", type=int, default=8, metavar="N", help="photos per Ray batch (default 8)")


def ray_engine(args: argparse.Namespace) -> Callable:
    """:func:`~drywallqa.serving.predict_images`'s signature, run on Ray with the parsed engine and model flags.

    The ``predictor`` argument of the returned function is unused: each worker loads its own
    from ``--model``, ``--model-arg``, ``--device``, ``--tta``, ``--threshold`` and ``--tile``.
    """
    from drywallqa.cli.common import model_args, tile_option
    from drywallqa.serving.ray_engine import predict_on_ray

    options = {"threshold": args.threshold, "tta": args.tta, "model_args": model_args(args) or None,
               "tile": tile_option(args)}
    if args.device:
        options["device"] = args.device

    def predict(inputs, prompts, out, predictor=None, **predict_options):
        predict_options.pop("workers", None)  # the local pipeline's photos in flight; Ray sizes its own
        return predict_on_ray(inputs, prompts, out, model=args.model, predictor_options=options, address=args.address,
                              workers=args.ray_workers, worker_cpus=args.worker_cpus, worker_gpus=args.worker_gpus,
                              batch_size=args.ray_batch_size, **predict_options)

    return predict
