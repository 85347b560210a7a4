#!/usr/bin/env python
"""Check that the QA figures stay the same while their code is made faster, and time them.

    python scripts/qa_figures_identity.py masks      (runs the shipped model once, caches the masks)
    python scripts/qa_figures_identity.py baseline   (figures of the cached masks -> the baseline JSON)
    python scripts/qa_figures_identity.py compare    (figures now against the baseline)
    python scripts/qa_figures_identity.py time       (CPU ms per photo of the QA figures, per class)
    python scripts/qa_figures_identity.py profile --kind taping   (cProfile of the same)

Photos: 40 of each real valid split (../shared/data/cracks/valid with "segment crack",
../shared/data/drywall-join/valid with "segment taping area", evenly spread over the sorted
names), and every photo of the sample-data generator's walls (drywallqa.data.synthetic, the
quickstart's seed 0), each also with a scale (mm_per_px) so the tape-width path is measured.
The model's masks are cached under ``--work`` (default /tmp/qafast); nothing here is written
into the repository (the real photos' masks and figures must not be committed).

What is compared: ``Prediction.from_result(...).to_dict()`` (figures, verdict, width_profile) and
the unrounded :class:`~drywallqa.qa.figures.QAFigures` fields, so that differences hidden by the
records' rounding are seen too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data"
REAL = {"crack": (DATA / "cracks/valid", "segment crack"), "taping": (DATA / "drywall-join/valid", "segment taping area")}
PER_CLASS = 40
SAMPLE_SCALE = 0.5  # mm per pixel given to the sample photos' second run


def photos(work: Path) -> list[tuple[str, str, str, float | None]]:
    """``(kind, path, prompt, mm_per_px)`` of every checked photo."""
    out = []
    for kind, (folder, prompt) in REAL.items():
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for i in np.linspace(0, len(names) - 1, PER_CLASS).round().astype(int):
            out.append((kind, str(names[i]), prompt, None))
    sample = work / "sample"
    if not sample.exists():
        from drywallqa.data.synthetic import generate_sample_data

        generate_sample_data(sample, images=60, seed=0)
    for kind, sub, prompt in (("crack", "cracks", "segment crack"), ("taping", "drywall-join", "segment taping area")):
        for path in sorted((sample / sub).rglob("*.jpg")) + sorted((sample / sub).rglob("*.png")):
            for scale in (None, SAMPLE_SCALE):
                out.append((f"sample-{kind}", str(path), prompt, scale))
    return out


def key(path: str, prompt: str, scale: float | None) -> str:
    return f"{Path(path).parent.parent.name}/{Path(path).parent.name}/{Path(path).name}|{prompt}|{scale}"


def cache_masks(work: Path) -> None:
    from drywallqa.files import read_photo
    from drywallqa.inference import load_predictor

    predictor = load_predictor()
    arrays, meta = {}, {}
    for i, (_, path, prompt, _) in enumerate(photos(work)):
        name = f"m{i}"
        k = key(path, prompt, None)
        if any(m["key"] == k for m in meta.values()):
            continue
        result = predictor.predict(read_photo(path).pixels, prompt)
        arrays[name] = result.mask
        meta[name] = {"key": k, "confidence": float(result.confidence), "threshold": float(result.threshold),
                      "extra": result.extra}
    np.savez_compressed(work / "masks.npz", **arrays)
    (work / "masks.json").write_text(json.dumps(meta, default=str))
    print(f"{len(arrays)} masks cached in {work}")


def load_cases(work: Path) -> list[tuple[str, str, str, float | None, object]]:
    from drywallqa.inference.core import SegmentationResult

    meta = json.loads((work / "masks.json").read_text())
    masks = np.load(work / "masks.npz")
    by_key = {m["key"]: (name, m) for name, m in meta.items()}
    cases = []
    for kind, path, prompt, scale in photos(work):
        name, m = by_key[key(path, prompt, None)]
        result = SegmentationResult(prompt, masks[name], m["confidence"], threshold=m["threshold"], extra=m["extra"])
        cases.append((kind, path, prompt, scale, result))
    return cases


def figures_of(cases: list) -> tuple[dict, dict]:
    from drywallqa.files import read_photo
    from drywallqa.inference.prediction import Prediction

    records, times = {}, {}
    for kind, path, prompt, scale, result in cases:
        photo = read_photo(path)
        start = time.process_time()
        prediction = Prediction.from_result(result, photo, image=path, mm_per_px=scale)
        elapsed = time.process_time() - start
        raw = {k: v for k, v in dataclasses.asdict(prediction.figures).items()}
        records[key(path, prompt, scale)] = {"record": prediction.to_dict(), "raw": json.loads(json.dumps(raw, default=list))}
        times.setdefault(kind, []).append(elapsed * 1000)
    return records, times


def differences(a: object, b: object, where: str, out: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            differences(a.get(k), b.get(k), f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append((where, a, b))


def compare(work: Path, baseline_file: Path) -> int:
    baseline = json.loads(baseline_file.read_text())
    now, _ = figures_of(load_cases(work))
    (work / "now.json").write_text(json.dumps(now, indent=1))
    changed, last_bits, max_abs, max_rel, verdicts = 0, 0, 0.0, 0.0, []
    for k in baseline:
        found: list = []
        differences(baseline[k], now.get(k), k, found)
        if found:
            relative = [abs(a - b) / max(abs(a), 1e-300) if isinstance(a, float) and isinstance(b, float)
                        and math.isfinite(a) and math.isfinite(b) else math.inf for _, a, b in found]
            if max(relative) < 1e-6:  # float32's last bits (an OpenCV distance transform varies by that run to run)
                last_bits += 1
            else:
                changed += 1
                for where, a, b in found[:6]:
                    print(f"  {where}: {a!r} -> {b!r}")
            for (_, a, b), rel in zip(found, relative, strict=True):
                if math.isfinite(rel):
                    max_abs = max(max_abs, abs(a - b))
                    max_rel = max(max_rel, rel)
        if baseline[k]["record"].get("verdict") != (now.get(k) or {}).get("record", {}).get("verdict"):
            verdicts.append(k)
    print(f"{len(baseline)} cases, {changed} differ, {last_bits} in the last float bits only (max abs {max_abs:.3g}, "
          f"max rel {max_rel:.3g}); "
          f"{len(verdicts)} verdicts changed {verdicts}")
    return 1 if changed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("masks", "baseline", "compare", "time", "profile"))
    parser.add_argument("--work", default="/tmp/qafast")
    parser.add_argument("--baseline", default=None, help="compare: the baseline JSON (default WORK/baseline.json)")
    parser.add_argument("--cv-threads", type=int, default=None,
                        help="time/profile: OpenCV's threads (1: CPU times that other work on the machine disturbs less)")
    parser.add_argument("--repeats", type=int, default=3, help="time: runs per photo, the least counts")
    parser.add_argument("--kind", default="taping", help="profile: crack, taping, sample-crack, sample-taping")
    args = parser.parse_args()
    work = Path(args.work)
    if args.cv_threads is not None:
        import cv2

        cv2.setNumThreads(args.cv_threads)
    work.mkdir(parents=True, exist_ok=True)
    if args.action == "masks":
        cache_masks(work)
    elif args.action == "baseline":
        records, _ = figures_of(load_cases(work))
        (work / "baseline.json").write_text(json.dumps(records, indent=1))
        print(f"{len(records)} cases written to {work / 'baseline.json'}")
    elif args.action == "compare":
        return compare(work, Path(args.baseline) if args.baseline else work / "baseline.json")
    elif args.action == "time":
        cases = [c for c in load_cases(work) if c[0] in REAL]
        figures_of(cases)  # warm-up: imports, caches
        runs = [figures_of(cases)[1] for _ in range(args.repeats)]
        for kind in runs[0]:
            values = [min(run[kind][i] for run in runs) for i in range(len(runs[0][kind]))]  # least disturbed
            print(f"{kind}: median {statistics.median(values):.1f} ms, mean {statistics.mean(values):.1f} ms "
                  f"CPU per photo over {len(values)} photos (each the least of {args.repeats} runs)")
    else:
        import cProfile
        import pstats

        cases = [c for c in load_cases(work) if c[0] == args.kind]
        figures_of(cases)
        profiler = cProfile.Profile()
        profiler.runcall(figures_of, cases)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    return 0


if __name__ == "__main__":
    sys.exit(main())
