"""Throughput of ``drywallqa predict --engine ray`` with 1 and with 2 workers on this machine.

Renders synthetic wall photos, starts one local Ray, predicts them with the shipped model on 1
worker and then on 2 (fresh output folders, one CPU each), and writes the table between the
``ray-throughput`` markers of docs/field.md (or prints it with ``--print``)::

    python scripts/ray_throughput.py                 # about a minute on 2 cores
    python scripts/ray_throughput.py --photos 16 --print

The ratio says what a second worker buys here, on this machine's cores as they are at the time
(the load average is recorded beside it); it is not a promise for a cluster.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

from drywallqa.hardware import cpu_name

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "field.md"
START, END = "<!-- ray-throughput:start -->", "<!-- ray-throughput:end -->"
PROMPTS = ["segment crack", "segment taping area"]


def render_photos(folder: Path, count: int, size: int) -> None:
    from drywallqa.data.synthetic import render_sample_image
    from drywallqa.files import write_image

    for index in range(count):
        dataset = "cracks" if index % 2 == 0 else "drywall-join"
        write_image(folder / f"wall-{index:03d}.jpg", render_sample_image(dataset, index, size=size).image, quality=90)


def measure(photos: Path, out: Path, workers: int) -> float:
    """Seconds for one predict run on ``workers`` Ray workers (actor start and model load included)."""
    from drywallqa.serving.ray_engine import predict_on_ray

    started = time.perf_counter()
    run = predict_on_ray([photos], PROMPTS, out, workers=workers, worker_cpus=1, batch_size=4)
    assert run.predicted == len(run.records), "a fresh output folder must predict every pair"
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48, help="synthetic photos (default 48)")
    parser.add_argument("--size", type=int, default=640, help="photo side in pixels (default 640)")
    parser.add_argument("--print", action="store_true", help="print the table instead of writing docs/field.md")
    args = parser.parse_args(argv)

    import ray

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="drywallqa-ray-bench-") as tmp:
        photos = Path(tmp) / "photos"
        render_photos(photos, args.photos, args.size)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            seconds = {workers: measure(photos, Path(tmp) / f"out-{workers}", workers) for workers in (1, 2)}
        finally:
            ray.shutdown()
    load_after = os.getloadavg()
    pairs = args.photos * len(PROMPTS)
    rate = {w: args.photos / s for w, s in seconds.items()}
    table = "\n".join([
        START,
        f"Measured by `python scripts/ray_throughput.py` on {time.strftime('%Y-%m-%d')}: {cpu_name()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after. Data: {args.photos} synthetic {args.size}x{args.size} JPEG photos x "
        f"{len(PROMPTS)} prompts ({pairs} masks), the shipped model on PyTorch fp32, one CPU per worker, "
        "a fresh output folder per run; times include starting the workers and loading the model.",
        "",
        "| workers | seconds | photos/s |",
        "|---|---|---|",
        *(f"| {w} | {seconds[w]:.1f} | {rate[w]:.2f} |" for w in (1, 2)),
        "",
        f"**2 workers / 1 worker: {rate[2] / rate[1]:.2f}x** the throughput.",
        END,
    ])
    if args.print:
        print(table)
        return 0
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{DOC} has no {START} ... {END} block", file=sys.stderr)
        return 2
    DOC.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: table, text, flags=re.S), encoding="utf-8")
    print(table)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
