#!/usr/bin/env python
"""Write docs/qa-validation-taping.md: taping figures on the band refined from the photo, validated.

    python scripts/taping_band_validation.py              (measures, then writes the JSON and the page)
    python scripts/taping_band_validation.py --from-json  (rewrites the page from the committed JSON)

On the quickstart's walls (`drywallqa sample-data`, the quickstart's default seed 0 and seeds 1-7,
the generator's exact taping bands as the truth), every validation joint photo with a drawn joint
is segmented by the shipped model ("segment taping area", CPU), and the band refined inside its
mask (drywallqa.qa.taping_band) is compared with the exact band: IoU of the predicted mask and of
the refined band, and the QA band width (width_mean_px, figure set "joint") of each over the exact
band's. The refinement's parameters were chosen on seeds 8-15, never on these.

On a subset of the real photos (every 5th of ../shared/data/drywall-join/valid, sorted by name;
only for sanity, never for tuning), where the only truth is a box, it checks that the refinement
stays sane: the band inside the predicted components' boxes, its width against the mask's.

Per-image records go to docs/results/qa-validation-taping.json, with the machine, the model's
weights hash and the parameters; the page is generated from that file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
JSON_OUT = REPO / "docs/results/qa-validation-taping.json"
MD_OUT = REPO / "docs/qa-validation-taping.md"
SEEDS = tuple(range(8))  # the quickstart's default seed 0 and the quickstart check's further seeds
TUNING_SEEDS = "8-15"
REAL_SPLIT = REPO.parent / "shared/data/drywall-join/valid"
WIDTH_GOAL = (0.8, 1.25)
IOU_GOAL = 0.7
PROMPT = "segment taping area"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available, {platform.system()}"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    from drywallqa.evaluation.metrics import get_stats, iou_score

    return float(iou_score(*get_stats(a, b)))


def band_width(mask: np.ndarray) -> float | None:
    from drywallqa.qa.figures import measure_mask

    return measure_mask(mask, "joint").width_mean_px


def refine(image: np.ndarray, mask: np.ndarray):
    from drywallqa.qa.taping_band import refine_taping_band

    started = time.perf_counter()
    band = refine_taping_band(image, mask)
    return band, time.perf_counter() - started


def quickstart_records(predictor, seeds: tuple[int, ...]) -> list[dict]:
    from drywallqa.data import AnnotatedDataset
    from drywallqa.data.synthetic import JOINTS_DATASET, generate_sample_data
    from drywallqa.files import read_image
    from drywallqa.serving.truth import sample_data_truths

    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            root = generate_sample_data(Path(tmp) / str(seed), seed=seed).root
            truths = sample_data_truths(root, "valid")
            for sample in AnnotatedDataset.load(root / JOINTS_DATASET, quiet=True).split("valid"):
                exact = truths[(str(sample.image_path.resolve()), "taping_area")]
                if not exact.any():
                    continue  # a wall whose joint is out of frame: nothing to measure
                image = read_image(sample.image_path)
                predicted = predictor.predict(image, PROMPT).mask
                band, seconds = refine(image, predicted)
                exact_width = band_width(exact)
                widths = {name: band_width(m) for name, m in (("predicted", predicted), ("refined", band.mask))}
                records.append({
                    "seed": seed, "image": sample.image_path.name,
                    "iou_predicted": round(iou(predicted, exact), 4), "iou_refined": round(iou(band.mask, exact), 4),
                    "width_exact_px": round(exact_width, 2),
                    **{f"width_{n}_px": None if w is None else round(w, 2) for n, w in widths.items()},
                    "lines": [line.kind for line in band.lines], "refined": band.refined, "kept": band.kept,
                    "left_out": band.left_out, "seconds": round(seconds, 3),
                })
            print(f"seed {seed}: {sum(r['seed'] == seed for r in records)} joint photos", flush=True)
    return records


def real_records(predictor, folder: Path, every: int) -> list[dict]:
    import cv2

    from drywallqa.files import read_image
    from drywallqa.qa.figures import measure_mask

    records = []
    for path in sorted(folder.glob("*.jpg"))[::every]:
        image = read_image(path)
        predicted = predictor.predict(image, PROMPT).mask
        band, seconds = refine(image, predicted)
        _, _, stats, _ = cv2.connectedComponentsWithStats(predicted.view(np.uint8), connectivity=8)
        boxes = np.zeros(predicted.shape, dtype=bool)
        shortest = 0
        for x, y, w, h, area in stats[1:]:
            if area >= 10:
                boxes[y : y + h, x : x + w] = True
                shortest = max(shortest, min(w, h))
        records.append({
            "image": path.name, "size": list(predicted.shape), "mask_px": int(predicted.sum()),
            "band_px": int(band.mask.sum()), "band_outside_boxes_px": int((band.mask & ~boxes).sum()),
            "largest_box_short_side_px": int(shortest),
            "width_mask_px": band_width(predicted), "width_band_px": band_width(band.mask),
            "width_max_band_px": measure_mask(band.mask, "joint").width_max_px,
            "lines": [line.kind for line in band.lines], "line_widths_px": [round(line.width_px, 1) for line in band.lines],
            "refined": band.refined, "kept": band.kept, "left_out": band.left_out, "seconds": round(seconds, 3),
        })
    print(f"real photos: {len(records)}", flush=True)
    return records


def straight_box_shares(annotations: Path) -> list[float]:
    """Short side over the photo's short side of the real export's boxes around straight joints
    (long side at least 5x the short one): how wide the annotators drew a joint's band."""
    import json

    coco = json.loads(annotations.read_text())
    sizes = {image["id"]: min(image["width"], image["height"]) for image in coco["images"]}
    shares = []
    for annotation in coco["annotations"]:
        _, _, w, h = annotation["bbox"]
        if min(w, h) > 0 and max(w, h) >= 5 * min(w, h):
            shares.append(min(w, h) / sizes[annotation["image_id"]])
    return shares


def shipped_model_id() -> str:
    from drywallqa.inference import default_model_path

    return hashlib.sha256((Path(str(default_model_path())) / "model.safetensors").read_bytes()).hexdigest()[:16]


def measure(seeds: tuple[int, ...], real: Path, every: int) -> dict:
    from drywallqa.inference import load_predictor
    from drywallqa.qa.taping_band import TapingBandParams

    predictor = load_predictor(None)
    data = {
        "machine": machine(), "runtime": str(getattr(predictor, "name", "")), "shipped_model": shipped_model_id(),
        "seeds": list(seeds), "tuning_seeds": TUNING_SEEDS, "params": asdict(TapingBandParams()),
        "quickstart": quickstart_records(predictor, seeds),
        "real": real_records(predictor, real, every) if real.is_dir() else [], "real_every": every,
        "real_folder": "../shared/data/drywall-join/valid",
    }
    train = real.parent / "train" / "_annotations.coco.json"
    if train.is_file():
        data["real_train_straight_box_shares"] = [round(v, 4) for v in straight_box_shares(train)]
    return data


# -- the page -------------------------------------------------------------------------------------
def ratios(records: list[dict], name: str) -> list[float]:
    return [r[f"width_{name}_px"] / r["width_exact_px"] for r in records if r[f"width_{name}_px"] is not None]


def quickstart_row(label: str, records: list[dict]) -> str:
    refined, predicted = ratios(records, "refined"), ratios(records, "predicted")
    within = sum(WIDTH_GOAL[0] <= v <= WIDTH_GOAL[1] for v in refined)
    cells = [
        label, str(len(records)),
        f"{statistics.mean(r['iou_predicted'] for r in records):.3f}",
        f"{statistics.mean(r['iou_refined'] for r in records):.3f}",
        f"{statistics.median(r['iou_predicted'] for r in records):.3f}",
        f"{statistics.median(r['iou_refined'] for r in records):.3f}",
        f"{statistics.median(predicted):.2f}" if predicted else "–",
        f"{statistics.median(refined):.2f}" if refined else "–",
        f"{within} of {len(refined)}",
    ]
    return "| " + " | ".join(cells) + " |"


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"{at(0.1):.2f} / {statistics.median(ordered):.2f} / {at(0.9):.2f}"


def markdown(data: dict) -> str:
    records = data["quickstart"]
    all_refined, all_predicted = ratios(records, "refined"), ratios(records, "predicted")
    mean_iou = statistics.mean(r["iou_refined"] for r in records)
    lines = [
        "# Taping figures on the joint: the band refined from the photo, validated",
        "",
        "Generated by `python scripts/taping_band_validation.py` from `docs/results/qa-validation-taping.json`; "
        "do not edit by hand.",
        "",
        "A taping area's QA figures (band width, covered length; figure set `joint`) are measured on a band "
        "refined from the photo inside each predicted component (`drywallqa.qa.taping_band`), not on the "
        "predicted mask, which stays the mask. Measured on the machine below with the shipped model "
        f"(weights `{data['shipped_model']}`, {data['runtime'] or 'default runtime'}):",
        "",
        f"- machine: {data['machine']}",
        f"- parameters: `TapingBandParams()` defaults, chosen on sample-data seeds {data['tuning_seeds']}; "
        f"the seeds below were not used to choose them",
        "",
        "## The quickstart's walls: against the generator's exact bands",
        "",
        f"`drywallqa sample-data` with seeds {', '.join(map(str, data['seeds']))} (seed 0 is the quickstart's "
        "default), validation joint photos with a drawn joint; truth: the exact band each joint covers "
        "(`_annotations.truth.coco.json`). Width: the QA figure width_mean_px of each mask over the exact "
        f"band's, per photo. Goals: mean IoU of the refined band >= {IOU_GOAL} and its width within "
        f"{WIDTH_GOAL[0]}-{WIDTH_GOAL[1]}x of the exact width.",
        "",
        "| seed | photos | IoU predicted (mean) | IoU refined (mean) | IoU predicted (median) | IoU refined (median) "
        "| width predicted / exact (median) | width refined / exact (median) | refined width within "
        f"{WIDTH_GOAL[0]}-{WIDTH_GOAL[1]}x |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed in data["seeds"]:
        lines.append(quickstart_row(str(seed), [r for r in records if r["seed"] == seed]))
    lines.append(quickstart_row("**all**", records))
    met_iou = mean_iou >= IOU_GOAL
    met_width = bool(all_refined) and WIDTH_GOAL[0] <= statistics.median(all_refined) <= WIDTH_GOAL[1]
    kinds = [kind for r in records for kind in r["lines"]]
    lines += [
        "",
        f"Goals: refined IoU {mean_iou:.3f} {'meets' if met_iou else 'misses'} {IOU_GOAL}; median width ratio "
        f"{statistics.median(all_refined):.2f} {'is' if met_width else 'is not'} within {WIDTH_GOAL[0]}-{WIDTH_GOAL[1]}. "
        f"Width ratio p10 / median / p90: predicted {quantiles(all_predicted)}, refined {quantiles(all_refined)}.",
        "",
        f"Joints found: {kinds.count('seam')} bare seams and {kinds.count('compound')} compound bands in "
        f"{sum(r['refined'] > 0 for r in records)} of {len(records)} photos; "
        f"{sum(r['kept'] for r in records)} components without a visible joint kept as predicted, "
        f"{sum(r['left_out'] for r in records)} left out beside a refined joint. Refinement: "
        f"{statistics.mean(r['seconds'] for r in records):.2f} s per photo on average (384 px photos).",
        "",
        "Where the refined band still misses (lowest IoUs): the model found no joint (an empty mask scores 0 "
        "either way), or its mask covers only part of a joint, and the band stays inside the predicted "
        "component's box. A bare seam's band is the tape it will take, centred on the gap: 52 mm wide when "
        "the photo's scale is known, otherwise 5.5 % of the photo's short side (the generator's joints span "
        "4-7 %, so a seam's width is right to within that spread, not measured).",
    ]
    shares = data.get("real_train_straight_box_shares")
    if shares:
        lines += [
            "",
            f"For comparison, the real export's boxes around straight joints (`drywall-join/train`, {len(shares)} "
            "boxes whose long side is at least 5x the short one) have a short side of p10 / median / p90 "
            f"{quantiles([100 * v for v in shares])} % of the photo's short side: drawn generously around "
            "the joint, a little wider than the tape's 5.5 %.",
        ]
    real = data["real"]
    if real:
        refined = [r for r in real if r["refined"]]
        width_ratio = [r["width_band_px"] / r["width_mask_px"] for r in refined if r["width_band_px"] and r["width_mask_px"]]
        widest = max((r["width_max_band_px"] / r["largest_box_short_side_px"] for r in refined
                      if r["width_max_band_px"] and r["largest_box_short_side_px"]), default=0.0)
        kinds = [kind for r in real for kind in r["lines"]]
        lines += [
            "",
            "## Real photos: sanity only",
            "",
            f"Every {data['real_every']}th photo of `{data['real_folder']}` ({len(real)} photos, sorted by name), "
            "segmented by the same model; the real export's only truth is a box per joint, so there is no band "
            "to score against, and these photos were not used to choose parameters. The predicted mask is "
            "returned unchanged, so every mask score on real photos (docs/model-card.md) is unchanged.",
            "",
            "| check | result |",
            "|---|---|",
            f"| photos with a joint line found | {len(refined)} of {len(real)} |",
            f"| lines found (bare seams / compound bands) | {kinds.count('seam')} / {kinds.count('compound')} |",
            f"| components kept as predicted (no visible joint) | {sum(r['kept'] for r in real)} |",
            f"| components left out beside a refined joint | {sum(r['left_out'] for r in real)} |",
            f"| band pixels outside the predicted components' boxes | {sum(r['band_outside_boxes_px'] for r in real)} |",
            f"| widest band (its width_max_px) / short side of the largest predicted box, max | {widest:.2f} |",
            f"| band width / mask width, p10 / median / p90 (photos with a line) | "
            f"{quantiles(width_ratio) if width_ratio else '–'} |",
            f"| refinement seconds per photo (640 px), mean | {statistics.mean(r['seconds'] for r in real):.2f} |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-json", action="store_true", help="only rewrite the page from the committed JSON")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--real", type=Path, default=REAL_SPLIT, help="real photos to check (skipped when absent)")
    parser.add_argument("--every", type=int, default=5, help="take every Nth real photo (default 5)")
    args = parser.parse_args(argv)
    import json

    from drywallqa.files import atomic_write_json, atomic_write_text

    if args.from_json:
        data = json.loads(JSON_OUT.read_text())
    else:
        data = measure(tuple(args.seeds), args.real, args.every)
        atomic_write_json(JSON_OUT, data, indent=1)
    atomic_write_text(MD_OUT, markdown(data))
    print(f"wrote {MD_OUT.relative_to(REPO)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
