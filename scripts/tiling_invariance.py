#!/usr/bin/env python
"""Write docs/tiling.md and docs/results/tiling-invariance.json: does the model judge a photo alike
whatever the frame around it and whatever its resolution?

    python scripts/tiling_invariance.py                 (needs ../shared/data; minutes on a CPU)
    python scripts/tiling_invariance.py --photos 8 --out-md /tmp/t.md --out-json /tmp/t.json

The shipped model (``drywallqa.load_predictor()``) judges real photos of cracks/valid ("segment
crack") and drywall-join/valid ("segment taping area"), a fixed seeded subset of ``--photos`` per
class among those with a true mask, against their true masks (drywall-join: its boxes filled):

- **one by one**: each 640 px photo as it is;
- **mosaic invariance**: four photos side by side, as a 2x2 mosaic (1280 x 1280), a 1x4 strip
  (640 wide, 2560 tall) and a 4x1 panorama (2560 wide, 640 tall), against the truths laid out
  alike; goal: the mean IoU of each layout >= 0.95 of the mean IoU of its photos judged one by one;
- **resolution invariance**: each photo enlarged 3x (1920 x 1920, bicubic; its truth by pixel
  repetition), like a phone photo of the same wall; goal: mean IoU >= 0.95 of the originals'.

Each layout is judged with ``tile="auto"`` (the default) and ``tile="off"`` (every photo
stretched to the model's square, the behaviour before tiling). Both compare the model with
itself, never with a test score. The script also measures what the tiling rule rests on: the
detail ratio of the training photos (``drywallqa.inference.tiling.DETAIL_RATIO``) and the width of
straight joints in the drywall-join boxes (``TRAINING_MM_PER_PX``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: class -> (dataset folder, prompt)
CLASSES = {"crack": ("cracks", "segment crack"), "taping_area": ("drywall-join", "segment taping area")}
MODES = ("auto", "off")
#: layout name -> (rows, columns) of four photos
LAYOUTS = {"2x2 mosaic": (2, 2), "1x4 strip (640 wide)": (4, 1), "4x1 panorama (2560 wide)": (1, 4)}
UPSCALE = 3
#: Enlargements of the 2x2 mosaics judged in tiles of 640 px: how much magnification the model
#: tolerates (each tile then shows a training photo's field of view enlarged that much).
MAGNIFICATIONS = (1.5, 2.0)
GOAL = 0.95
#: Training photos sampled per class for the detail ratio.
TRAINING_SAMPLE = 120


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Per-image IoU, both masks empty counting 1 (drywallqa.evaluation.metrics)."""
    from drywallqa.evaluation.metrics import get_stats, iou_score

    return float(iou_score(*get_stats(prediction, truth), reduction="per-image", zero_division=1.0))


def select(data: Path, dataset: str, class_name: str, count: int, seed: int):
    """``count`` valid photos with a true mask of ``class_name``, chosen by a seeded draw, in name order."""
    from drywallqa import AnnotatedDataset

    samples = [s for s in AnnotatedDataset.load(data / dataset).split("valid")
               if any(a.class_name == class_name for a in s.annotations) and (s.width, s.height) == (640, 640)]
    samples.sort(key=lambda s: s.image_path.name)
    chosen = np.random.default_rng(seed).choice(len(samples), size=min(count, len(samples)), replace=False)
    return [samples[i] for i in sorted(chosen)]


def layout(parts: list[np.ndarray], rows: int, cols: int) -> np.ndarray:
    return np.concatenate([np.concatenate(parts[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)


def judge(predictor, image: np.ndarray, prompt: str, truth: np.ndarray, tile) -> dict:
    result = predictor.predict(image, prompt, tile=tile)
    tiling = result.extra.get("tiling", {})
    return {"iou": iou(result.mask, truth), "tiles": tiling.get("tiles", 1), "tile_px": tiling.get("tile_px"),
            "detail_factor": tiling.get("detail_factor"), "mask": result.mask}


def measure_class(predictor, samples, prompt: str, class_name: str, say) -> dict:
    """One by one, the layouts of four and the 3x enlargements of one class's photos, in both modes."""
    import cv2

    images = [s.load_image() for s in samples]
    truths = [s.mask(class_name) for s in samples]
    single = []
    for image, truth in zip(images, truths):
        auto = judge(predictor, image, prompt, truth, "auto")
        off = judge(predictor, image, prompt, truth, "off")
        single.append({"iou": auto["iou"], "tiles": auto["tiles"], "same_as_off": bool(np.array_equal(auto["mask"], off["mask"]))})
    say(f"  {class_name}: {len(single)} photos one by one, mean IoU {np.mean([s['iou'] for s in single]):.3f}")
    layouts = {}
    groups = [list(range(i, i + 4)) for i in range(0, len(images) - 3, 4)]
    for name, (rows, cols) in LAYOUTS.items():
        runs = {mode: [] for mode in MODES}
        for group in groups:
            image = layout([images[i] for i in group], rows, cols)
            truth = layout([truths[i] for i in group], rows, cols)
            for mode in MODES:
                judged = judge(predictor, image, prompt, truth, mode)
                runs[mode].append({"iou": judged["iou"], "tiles": judged["tiles"], "tile_px": judged["tile_px"]})
        reference = float(np.mean([single[i]["iou"] for group in groups for i in group]))
        layouts[name] = {"shape": [rows * 640, cols * 640], "groups": len(groups), "one_by_one_iou": reference,
                         **{mode: summary(runs[mode], reference) for mode in MODES}}
        say(f"  {class_name} {name}: " + ", ".join(f"{m} {layouts[name][m]['ratio']:.3f}" for m in MODES))
    runs = {mode: [] for mode in MODES}
    for image, truth in zip(images, truths):
        big = cv2.resize(image, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
        big_truth = np.repeat(np.repeat(truth, UPSCALE, axis=0), UPSCALE, axis=1)
        for mode in MODES:
            judged = judge(predictor, big, prompt, big_truth, mode)
            runs[mode].append({"iou": judged["iou"], "tiles": judged["tiles"], "tile_px": judged["tile_px"],
                               "detail_factor": judged["detail_factor"]})
    reference = float(np.mean([s["iou"] for s in single]))
    upscaled = {"shape": [640 * UPSCALE] * 2, "photos": len(images), "one_by_one_iou": reference,
                **{mode: summary(runs[mode], reference) for mode in MODES}}
    magnified = {}
    for factor in MAGNIFICATIONS:  # 2x2 mosaics enlarged, in tiles of 640 px: each tile magnified
        runs_at = []
        for group in groups:
            mosaic = cv2.resize(layout([images[i] for i in group], 2, 2), None, fx=factor, fy=factor,
                                interpolation=cv2.INTER_CUBIC)
            truth = layout([truths[i] for i in group], 2, 2).astype(np.uint8)
            truth = cv2.resize(truth, (mosaic.shape[1], mosaic.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            judged = judge(predictor, mosaic, prompt, truth, 640)
            runs_at.append({"iou": judged["iou"], "tiles": judged["tiles"], "tile_px": judged["tile_px"]})
        reference_at = float(np.mean([single[i]["iou"] for group in groups for i in group]))
        magnified[str(factor)] = {"shape": list(map(int, [1280 * factor] * 2)), **summary(runs_at, reference_at)}
    upscaled["magnified_mosaics"] = magnified
    say(f"  {class_name} magnified: " + ", ".join(f"{k}x {v['ratio']:.3f}" for k, v in magnified.items()))
    factors = [r["detail_factor"] for r in runs["auto"] if r["detail_factor"] is not None]
    upscaled["auto"]["detail_factors"] = {str(k): factors.count(k) for k in sorted(set(factors))}
    say(f"  {class_name} 3x: " + ", ".join(f"{m} {upscaled[m]['ratio']:.3f}" for m in MODES))
    return {"prompt": prompt, "photos": [s.image_path.name for s in samples],
            "one_by_one": {"iou": reference, "all_one_tile": all(s["tiles"] == 1 for s in single),
                           "all_same_as_off": all(s["same_as_off"] for s in single)},
            "layouts": layouts, "upscaled": upscaled}


def summary(runs: list[dict], reference: float) -> dict:
    mean = float(np.mean([r["iou"] for r in runs]))
    return {"iou": mean, "ratio": mean / reference if reference else None, "met": bool(reference and mean >= GOAL * reference),
            "tiles_mean": float(np.mean([r["tiles"] for r in runs])),
            "tile_px_median": float(np.median([r["tile_px"] for r in runs if r["tile_px"]])) if any(
                r["tile_px"] for r in runs) else None}


def training_scale(data: Path, seed: int) -> dict:
    """What the tiling constants rest on, measured on the training photos."""
    import cv2

    from drywallqa import AnnotatedDataset
    from drywallqa.files import read_image
    from drywallqa.inference.tiling import detail_ratio

    ratios = {}
    rng = np.random.default_rng(seed)
    for class_name, (dataset, _) in CLASSES.items():
        files = sorted((data / dataset / "train").glob("*.jpg"))
        chosen = rng.choice(len(files), size=min(TRAINING_SAMPLE, len(files)), replace=False)
        ratios[class_name] = [detail_ratio(cv2.cvtColor(read_image(files[i]), cv2.COLOR_RGB2GRAY).astype(np.float32))
                              for i in sorted(chosen)]
    both = ratios["crack"] + ratios["taping_area"]
    widths = []
    for sample in AnnotatedDataset.load(data / "drywall-join"):
        for annotation in sample.annotations:
            x1, y1, x2, y2 = annotation.box
            if (y2 - y1) >= 4 * (x2 - x1):  # a straight vertical joint: its box's width is the band's
                widths.append(x2 - x1)
    return {
        "detail_ratio_percentiles": {class_name: {str(p): float(np.percentile(v, p)) for p in (10, 25, 50)}
                                     for class_name, v in [*ratios.items(), ("both", both)]},
        "training_photos_sampled": {k: len(v) for k, v in ratios.items()},
        "vertical_joint_box_width_px": {"median": float(np.median(widths)), "boxes": len(widths)},
    }


def markdown(report: dict) -> str:
    from drywallqa.inference import tiling as t

    scale = report["training_scale"]
    lines = [
        "# Tiling: photos judged at the scale the model learned", "",
        f"Generated by `{report['command']}` on {report['date']} ({report['machine']}, {report['runtime']}, "
        f"{report['seconds']:.0f} s); raw figures in `{report['json']}`.", "",
        "The shipped model learned from 640 x 640 photos at a 448 px input. `tile=auto` (the default of "
        "`load_predictor`, `predict`, `serve`, `watch` and the HTTP API) cuts a photo larger or more elongated "
        "than that into overlapping tiles, each covering what a training photo covered, runs the model on every "
        "tile (batched) and blends the tiles' logits with a smooth window into one map at the photo's size "
        "(`drywallqa/inference/tiling.py`). `tile=off` stretches every photo to the model's square, as before; "
        "`tile=PX` gives the tile side in photo pixels.", "",
        "## The rule", "",
        f"- A photo at most {t.ONE_TILE_SLACK:g} tile sides long and at most {t.ONE_TILE_ASPECT:g} : 1 is one "
        "tile, stretched as before: every 640 x 640 photo is judged exactly as without tiling.",
        f"- Tile side with `mm_per_px` (`--mm-per-px`, the `mm_per_px` form field): the field of view of a "
        f"training photo, {t.TRAINING_PHOTO_PX} x {t.TRAINING_MM_PER_PX:g} mm/px / mm_per_px photo pixels. "
        f"{t.TRAINING_MM_PER_PX:g} mm/px is an estimate: straight (vertical) joints of drywall-join are "
        f"{scale['vertical_joint_box_width_px']['median']:.0f} px wide at 640 px (median of "
        f"{scale['vertical_joint_box_width_px']['boxes']} boxes), and a taped joint's band is about 150 mm wide "
        f"(150 / {scale['vertical_joint_box_width_px']['median']:.0f} = "
        f"{150 / scale['vertical_joint_box_width_px']['median']:.1f} mm/px).",
        f"- Tile side without a scale: {t.TRAINING_PHOTO_PX} x k photo pixels, k the photo's detail factor: the "
        f"least reduction (of {', '.join(f'{k:g}' for k in t.DETAIL_FACTORS)}) after which the energy of its finest "
        f"octave of detail is at least {t.DETAIL_RATIO:g} of the next octave's. The training photos' own ratio "
        f"has a 10th percentile of {scale['detail_ratio_percentiles']['both']['10']:.2f} "
        f"(crack {scale['detail_ratio_percentiles']['crack']['10']:.2f}, taping area "
        f"{scale['detail_ratio_percentiles']['taping_area']['10']:.2f}; "
        f"{sum(scale['training_photos_sampled'].values())} train photos): a sharp photo keeps 640 px tiles, an "
        "enlarged one is reduced to about its own detail first.",
        f"- Tiles overlap by at least {t.MIN_OVERLAP:.0%}; past {t.MAX_TILES} tiles they grow. A photo's "
        "confidence is its tiles' confidences weighted by the mask area each found. Every record says the tiles "
        "used (`tiling` in results.jsonl, the `image` of an HTTP answer, watch.json).", "",
        "## Invariance on real photos", "",
        f"{report['photos_per_class']} photos per class of cracks/valid and drywall-join/valid (seed "
        f"{report['seed']}; the list is in the JSON), in groups of four. Each layout's IoU against the true masks "
        "laid out the same way (drywall-join: boxes filled), its mean over the groups, and the ratio of that mean "
        "to the mean IoU of the same photos judged one by one (for the 3x enlargements: of each photo at 640 px); "
        f"the goal is a ratio of at least {GOAL:g} in the default mode (auto).", "",
        "| class | layout | size (h x w) | one by one IoU | auto IoU | auto ratio | auto tiles | off IoU | off ratio | goal (auto) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for class_name, result in report["classes"].items():
        rows = [*result["layouts"].items(), (f"{UPSCALE}x enlarged", result["upscaled"])]
        for name, row in rows:
            auto, off = row["auto"], row["off"]
            lines.append(f"| {class_name} | {name} | {row['shape'][0]} x {row['shape'][1]} | {row['one_by_one_iou']:.3f} | "
                         f"{auto['iou']:.3f} | {auto['ratio']:.3f} | {auto['tiles_mean']:.1f} | {off['iou']:.3f} | "
                         f"{off['ratio']:.3f} | {'met' if auto['met'] else 'not met'} |")
    lines += ["", "Magnification the model tolerates: the 2x2 mosaics enlarged (bicubic) and judged in tiles of "
              "640 px, so that each tile shows a training photo's field of view magnified; mean IoU and its ratio "
              "to the photos judged one by one:", "",
              "| class | " + " | ".join(f"magnified {m:g}x ({1280 * m:.0f} px)" for m in MAGNIFICATIONS) + " |",
              "|---|" + "---|" * len(MAGNIFICATIONS)]
    for class_name, result in report["classes"].items():
        magnified = result["upscaled"]["magnified_mosaics"]
        lines.append(f"| {class_name} | " + " | ".join(
            f"{magnified[str(m)]['iou']:.3f} ({magnified[str(m)]['ratio']:.3f})" for m in MAGNIFICATIONS) + " |")
    lines += ["", "Hence the rule leans coarse: no detail factor between 1 and 2, and a photo up to 1.5 tile sides "
              "long is judged whole (the detail factor of an enlarged photo often falls short of its enlargement: "
              "the 3x photos measured " + "; ".join(
                  f"{c}: " + ", ".join(f"{n} at {k}" for k, n in r["upscaled"]["auto"]["detail_factors"].items())
                  for c, r in report["classes"].items()) + ").", ""]
    lines += ["One by one, every photo is one tile in auto mode and its mask is the one tile=off gives: "
              + ", ".join(f"{c}: {'yes' if r['one_by_one']['all_one_tile'] and r['one_by_one']['all_same_as_off'] else 'no'}"
                          for c, r in report["classes"].items()) + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder of cracks/ and drywall-join/")
    parser.add_argument("--photos", type=int, default=40, help="photos per class, a multiple of 4 (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-md", type=Path, default=REPO / "docs" / "tiling.md")
    parser.add_argument("--out-json", type=Path, default=REPO / "docs" / "results" / "tiling-invariance.json")
    args = parser.parse_args(argv)
    if args.photos < 4 or args.photos % 4:
        parser.error("--photos must be a positive multiple of 4")
    if not (args.data / "cracks").is_dir():
        parser.error(f"{args.data}: no cracks/ folder (give --data)")
    from drywallqa.files import atomic_write_json, atomic_write_text
    from drywallqa.inference import load_predictor

    started = time.perf_counter()
    predictor = load_predictor(say=lambda line: print(line, flush=True))
    classes = {}
    for class_name, (dataset, prompt) in CLASSES.items():
        samples = select(args.data, dataset, class_name, args.photos, args.seed)
        classes[class_name] = measure_class(predictor, samples, prompt, class_name, lambda line: print(line, flush=True))
    command = "python scripts/tiling_invariance.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    report = {
        "command": command, "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "runtime": predictor.name, "photos_per_class": args.photos, "seed": args.seed, "goal": GOAL,
        "json": str(args.out_json.relative_to(REPO)) if args.out_json.is_relative_to(REPO) else str(args.out_json),
        "training_scale": training_scale(args.data, args.seed), "classes": classes,
    }
    report["seconds"] = time.perf_counter() - started
    report["goals_met"] = all(r["auto"]["met"] for c in classes.values()
                              for r in [*c["layouts"].values(), c["upscaled"]])
    atomic_write_json(args.out_json, report, indent=1)
    atomic_write_text(args.out_md, markdown(report) + "\n")
    print(f"wrote {args.out_md} and {args.out_json}; goals {'met' if report['goals_met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
