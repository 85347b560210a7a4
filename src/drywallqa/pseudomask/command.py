"""Command-line layer of pseudo-masks: ``drywallqa masks`` and ``python -m drywallqa.pseudomask``.

Two modes over the Python API::

    drywallqa masks DATASET --method ridge --out OUT                     # make_pseudo_masks
    drywallqa masks DATASET --evaluate --method box,grabcut,ridge \\
        --preview grid.png --json scores.json                            # evaluate_pseudo_masks

To wire it into a CLI: ``parser = subparsers.add_parser("masks"); add_arguments(parser)``; the
parser's ``handler`` default is :func:`run`, which returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from drywallqa.errors import ConfigError, DrywallQAError

DESCRIPTION = "make pseudo-masks from boxes, or measure pseudo-mask methods where the truth is known"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``masks`` arguments to ``parser`` and set ``handler=run``."""
    from drywallqa.pseudomask.registry import PSEUDO_MASK_METHODS

    methods = "; ".join(f"{s.name}: {s.summary}" for s in PSEUDO_MASK_METHODS.values())
    parser.add_argument("datasets", nargs="+", metavar="DATASET",
                        help="dataset folder or annotation json (several only with --evaluate)")
    parser.add_argument("--method", default=None,
                        help=f"method, or comma-separated methods with --evaluate ({methods}); "
                             "default ridge, or box,grabcut,ridge with --evaluate")
    parser.add_argument("--out", metavar="OUT", help="output folder for the new dataset (required without --evaluate)")
    parser.add_argument("--evaluate", action="store_true", help="score the methods against known truth instead")
    parser.add_argument("--weights", metavar="W", help="sam: hub id or local folder; model: checkpoint folder")
    parser.add_argument("--device", help="torch device for sam/model (default: cuda if available, else cpu)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for CPU methods (default 2)")
    parser.add_argument("--split", action="append", dest="splits", metavar="SPLIT",
                        help="only this split (repeatable; default all)")
    parser.add_argument("--option", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                        help="method parameter, e.g. iterations=3 or ridge.polarity=bright (value parsed as JSON "
                             "when it can be)")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="redo every image and replace existing outputs (default: resume)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    parser.add_argument("--truth", metavar="FILE", help="--evaluate: truth COCO file/folder for a box-only dataset "
                                                         "(default: _annotations.truth.coco.json beside it)")
    parser.add_argument("--limit", type=int, help="--evaluate: at most this many images per dataset (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="--evaluate: seed of --limit and of the preview")
    parser.add_argument("--preview", metavar="PNG", help="--evaluate: write a preview grid here")
    parser.add_argument("--preview-images", type=int, default=6, help="--evaluate: rows of the preview (default 6)")
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help="write the report / run summary as JSON to FILE (stdout if no FILE)")
    parser.set_defaults(handler=run)
    return parser


def parse_options(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict]:
    """``["iterations=3", "ridge.polarity=bright"]`` → ``{method: {key: value}}``.

    A bare ``KEY=VALUE`` applies to every method; values are JSON when they parse, else strings.

    Raises:
        ConfigError: For an item without ``=`` or naming a method that is not run.
    """
    out: dict[str, dict] = {m: {} for m in methods}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option expects [METHOD.]KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        target, dot, name = key.strip().rpartition(".")
        if dot and target not in out:
            raise ConfigError(f"--option {item!r} names method {target!r}, which is not run ({', '.join(methods)})")
        for method in [target] if dot else methods:
            out[method][name] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Handle parsed ``masks`` arguments; returns the exit code."""
    from drywallqa.files import atomic_write_json
    from drywallqa.pseudomask.registry import method_name, parse_methods

    if args.evaluate:
        from drywallqa.pseudomask.evaluate import evaluate_pseudo_masks

        methods = [method_name(m) for m in parse_methods(args.method or "box,grabcut,ridge")]
        report = evaluate_pseudo_masks(
            args.datasets, methods, truth=args.truth, splits=args.splits, limit=args.limit, seed=args.seed,
            workers=args.workers, weights=args.weights, device=args.device,
            method_options=parse_options(args.option, methods), preview=args.preview,
            preview_images=args.preview_images, progress=args.progress,
        )
        result = report.to_dict()
        if args.json != "-":
            print(report.to_markdown())
            if report.preview:
                print(f"preview: {report.preview}")
    else:
        from drywallqa.pseudomask.generate import make_pseudo_masks

        methods = [method_name(m) for m in parse_methods(args.method or "ridge")]
        if len(methods) != 1:
            raise ConfigError(f"--method takes one method without --evaluate, got {', '.join(methods)}")
        if len(args.datasets) != 1:
            raise ConfigError(f"give one DATASET without --evaluate, got {len(args.datasets)}")
        if not args.out:
            raise ConfigError("--out OUT is required without --evaluate (a new folder; the input is never modified)")
        summary = make_pseudo_masks(
            args.datasets[0], methods[0], args.out, workers=args.workers, weights=args.weights, device=args.device,
            resume=args.resume, progress=args.progress, splits=args.splits,
            method_options=parse_options(args.option, methods)[methods[0]],
        )
        result = summary.to_dict()
        if args.json != "-":
            print(summary)
    if args.json == "-":
        print(json.dumps(result, indent=1))
    elif args.json:
        atomic_write_json(args.json, result, indent=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m drywallqa.pseudomask``: the same arguments as ``drywallqa masks``."""
    parser = add_arguments(argparse.ArgumentParser(prog="python -m drywallqa.pseudomask", description=DESCRIPTION))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except DrywallQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
