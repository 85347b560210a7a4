"""``drywallqa report``: one self-contained HTML file from a ``predict`` run."""

from __future__ import annotations

import argparse


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="one self-contained HTML report (inline thumbnails, worst first) from a predict run",
        description="Render the results of `drywallqa predict` as one HTML file that opens offline: overlays as "
        "inline thumbnails, the QA figures table, failed masks first and then by severity.",
    )
    parser.add_argument("results", metavar="RESULTS", help="a `drywallqa predict` output folder or its results.jsonl")
    parser.add_argument("--out", metavar="HTML", default="report.html", help="HTML file to write (default report.html)")
    parser.add_argument("--title", default="Drywall QA report", help="page title")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from drywallqa.serving import write_report

    print(f"wrote {write_report(args.results, args.out, title=args.title)}")
    return 0
