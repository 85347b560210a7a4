#!/usr/bin/env python
"""Write docs/experiments.md: every lever measured on the carved validation groups, one row each.

    python scripts/experiments.py            (reads docs/experiments.yaml, writes docs/experiments.md)

docs/experiments.yaml lists the rows: a lever, the model folder that measures it and the
`drywallqa evaluate --json` file of that model on the validation groups of its training run
(`--splits-from MODEL --split valid --threshold 0.5`: the groups that choose checkpoints, never a
reported split). When the file is missing and the model folder is here, this script runs that
evaluation and writes it (needs ../shared/data); committed files are reused, so the table
regenerates on a machine without the run folders. Every figure is read from those files and from
the model's training.json (`record`: a committed copy, written from the model folder when
missing), never typed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("crack", "taping_area")


def evaluate(model: Path, out: Path, data: Path) -> None:
    """`drywallqa evaluate` of ``model`` on its run's validation groups at threshold 0.5."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ["drywallqa", "evaluate", "--model", str(model), "--data", str(data / "cracks"), str(data / "drywall-join"),
               "--splits-from", str(model), "--split", "valid", "--threshold", "0.5", "--json", str(out), "--no-progress"]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def width_ratio(report: dict, class_name: str = "crack") -> float | None:
    """Median over images of predicted / true mask area: above 1 the masks are too wide."""
    ratios = [img["predicted_pixels"] / img["truth_pixels"] for img in report["images"]
              if img.get("class_name") == class_name and img.get("truth_pixels")]
    return statistics.median(ratios) if ratios else None


def budget_text(record: dict) -> str:
    """Hardware, minutes and steps of a model's training, earlier stages counted."""
    budget = record.get("budget") or {}
    stages = [s.get("budget") or {} for s in record.get("earlier_stages", [])]
    total = sum(float(b.get("minutes") or 0) for b in [*stages, budget])
    text = f"{budget.get('hardware', '?')}: {budget.get('minutes', '?')} min, {budget.get('steps', '?')} steps"
    if stages:
        text += f" (after {len(stages)} earlier stage(s); {total:.0f} min in all)"
    if record.get("kept") and record.get("best_checkpoint"):
        text += f"; weights kept: {record['kept']} ({Path(record['best_checkpoint']).name})"
    elif record.get("kept"):
        text += f"; weights kept: {record['kept']}"
    return text


def row(entry: dict, data: Path) -> list[str]:
    eval_path = REPO / entry["eval"]
    model = REPO / entry["model"] if entry.get("model") else None
    if not eval_path.is_file():
        if model is None or not (model / "config.json").is_file():
            return [entry["lever"], "not measured: neither the evaluation nor the model is here", *["–"] * 6]
        # A row may score on other copies of the photos (`data:`, holding cracks/ and drywall-join/),
        # e.g. a training pack's re-encoded ones.
        evaluate(model, eval_path, REPO / entry["data"] if entry.get("data") else data)
    report = json.loads(eval_path.read_text())
    record_path = REPO / entry["record"] if entry.get("record") else model / "training.json" if model else None
    if record_path and not record_path.is_file() and model and (model / "training.json").is_file():
        # Keep the run's record beside its evaluation, so the row regenerates without the run folder.
        shutil.copyfile(model / "training.json", record_path)
    record = json.loads(record_path.read_text()) if record_path and record_path.is_file() else {}
    classes = report["classes"]
    ious = [classes[c]["iou"]["mean"] for c in CLASSES if c in classes]
    width = width_ratio(report)
    fps = [classes[c]["wrong_prompt_fp_rate"]["mean"] for c in CLASSES
           if c in classes and (classes[c].get("wrong_prompt_fp_rate") or {}).get("mean") is not None]
    return [
        entry["lever"],
        budget_text(record) if record else "–",
        *(f"{classes[c]['iou']['mean']:.3f}" if c in classes else "–" for c in CLASSES),
        f"{sum(ious) / len(ious):.3f}" if ious else "–",
        "–" if width is None else f"{width:.2f}",
        " / ".join(f"{classes[c].get('confidence_iou_pearson') or float('nan'):.2f}" for c in CLASSES if c in classes),
        "–" if not fps else f"{100 * max(fps):.3f} %",
    ]


#: The sample-data seeds of the quickstart check: scenes no model trained on (training renders seed 1000).
QUICKSTART_SEEDS = tuple(range(8))


def quickstart_check(entry: dict) -> list[str] | None:
    """The row's model on `drywallqa quickstart` (sample data, QUICKSTART_SEEDS): verdicts against the
    exact masks' verdicts and IoU against the exact masks, from ``entry["quickstart"]`` (run and written
    when missing or measured on other seeds)."""
    if not entry.get("quickstart"):
        return None
    path = REPO / entry["quickstart"]
    model = REPO / entry["model"] if entry.get("model") else None
    from drywallqa.data.synthetic import FORMAT_VERSION
    from drywallqa.qa import VERDICTS

    measured_on = json.loads(path.read_text()) if path.is_file() else {}
    stale = (measured_on.get("seeds") != list(QUICKSTART_SEEDS)
             or measured_on.get("sample_data_format") != FORMAT_VERSION)
    if stale and model is not None and (model / "config.json").is_file():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for seed in QUICKSTART_SEEDS:
                subprocess.run(["drywallqa", "quickstart", f"{tmp}/{seed}", "--model", str(model), "--seed", str(seed)],
                               check=True, stdout=subprocess.DEVNULL)
            summary = {"seeds": list(QUICKSTART_SEEDS), "sample_data_format": FORMAT_VERSION}
            for dataset in ("cracks", "drywall-join"):
                records = [{**json.loads(line), "seed": seed} for seed in QUICKSTART_SEEDS
                           for line in (Path(tmp) / str(seed) / "predictions" / dataset / "results.jsonl").read_text().splitlines()
                           if line.strip()]
                # Empty masks where the generator drew the structure: the confidence must say so.
                missed = [r for r in records if r["figures"]["area_px"] == 0 and r["truth"]["truth_pixels"] > 0]
                summary[dataset] = {
                    "verdicts": {v: sum(r["verdict"] == v for r in records) for v in VERDICTS},
                    "verdicts_as_truth": sum(r["verdict"] == r["truth"]["verdict"] for r in records),
                    "wrong_verdicts": [{"seed": r["seed"], "image": Path(r["image"]).name, "verdict": r["verdict"],
                                        "truth_verdict": r["truth"]["verdict"], "iou": r["truth"]["iou"]}
                                       for r in records if r["verdict"] != r["truth"]["verdict"]],
                    "iou_vs_truth": statistics.mean(r["truth"]["iou"] for r in records),
                    "empty_masks_on_visible_structure": len(missed),
                    "of_them_confidence_above_half": sum(r["figures"]["confidence"] > 0.5 for r in missed),
                    "their_confidences": [r["figures"]["confidence"] for r in missed],
                }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    cracks, joints = summary["cracks"], summary["drywall-join"]
    missed = sum(s["empty_masks_on_visible_structure"] for s in (cracks, joints))
    confident = sum(s["of_them_confidence_above_half"] for s in (cracks, joints))
    confidences = ", ".join(f"{c:.2f}" for s in (cracks, joints) for c in s["their_confidences"])
    seeds = summary.get("seeds", [])
    return [
        entry["lever"],
        ("all" if seeds == list(QUICKSTART_SEEDS) else ", ".join(str(seed) for seed in seeds))
        + ("" if summary.get("sample_data_format") == FORMAT_VERSION
           else f" (sample data format {summary.get('sample_data_format', 1)})"),
        *(f"{s['verdicts_as_truth']} of {sum(s['verdicts'].values())}" if "verdicts_as_truth" in s else "–"
          for s in (cracks, joints)),
        f"{cracks['iou_vs_truth']:.2f}", f"{joints['iou_vs_truth']:.2f}",
        f"{confident} of {missed}" + (f" ({confidences})" if confidences else ""),
    ]


def shipped_model_id() -> str:
    """The first 16 hex digits of the SHA-256 of the shipped weights: which model a cached table measured."""
    import hashlib

    from drywallqa.inference import default_model_path

    return hashlib.sha256((Path(str(default_model_path())) / "model.safetensors").read_bytes()).hexdigest()[:16]


def stale(path: Path) -> bool:
    """A cached table of the shipped model is missing, or was measured on other weights or seeds."""
    if not path.is_file():
        return True
    cached = json.loads(path.read_text())
    return cached.get("shipped_model") != shipped_model_id() or cached.get("seeds") != list(QUICKSTART_SEEDS)


def quickstart_scenes():
    """``(seed, sample-data root, true masks of its valid split)`` for each quickstart seed, rendered
    into a temporary folder that lives while the caller iterates."""
    import tempfile

    from drywallqa.data.synthetic import generate_sample_data
    from drywallqa.serving.truth import sample_data_truths

    with tempfile.TemporaryDirectory() as tmp:
        for seed in QUICKSTART_SEEDS:
            paths = generate_sample_data(Path(tmp) / str(seed), seed=seed)
            yield seed, paths.root, sample_data_truths(paths.root, "valid")


#: Where the crack-width comparison is kept (regenerated when missing or of other weights, see :func:`stale`).
CRACK_WIDTHS = REPO / "docs/results/experiments/crack-widths.json"


def crack_widths(data: Path) -> list[list[str]]:
    """Mean crack width (QA figure width_mean_px, per 640 px of image width) of the real export's labels,
    of the generator's exact masks on the quickstart's seeds, and of the shipped model's masks there."""
    if stale(CRACK_WIDTHS):
        from drywallqa.data import AnnotatedDataset
        from drywallqa.files import read_image
        from drywallqa.inference import load_predictor
        from drywallqa.qa.figures import measure_mask

        def width(mask) -> float | None:
            value = measure_mask(mask, "crack").width_mean_px
            return None if value is None else value * 640 / mask.shape[1]

        widths: dict[str, list[float]] = {}
        for split in ("train", "valid"):
            if (data / "cracks" / split).is_dir():
                masks = (s.mask("crack") for s in AnnotatedDataset.load(data / "cracks", quiet=True).split(split))
                widths[f"real export, cracks/{split} labels"] = [w for w in map(width, masks) if w is not None]
        predictor = load_predictor(None)
        truth_widths, model_widths = [], []
        for _, _, truths in quickstart_scenes():
            for (image, class_name), truth in truths.items():
                if class_name != "crack" or not truth.any():
                    continue
                mask = predictor.predict(read_image(image), "segment crack").mask
                truth_widths.append(width(truth))
                model_widths.append(width(mask) if mask.any() else None)
        widths["generator's exact masks (quickstart seeds, valid)"] = [w for w in truth_widths if w is not None]
        widths["shipped model's masks on those photos"] = [w for w in model_widths if w is not None]
        CRACK_WIDTHS.write_text(json.dumps({"shipped_model": shipped_model_id(), "seeds": list(QUICKSTART_SEEDS),
                                            "width_mean_px_per_640": {
            name: [round(float(w), 3) for w in values] for name, values in widths.items()}}, indent=1))
    measured = json.loads(CRACK_WIDTHS.read_text())["width_mean_px_per_640"]
    rows = []
    for name, values in measured.items():
        ordered = sorted(values)
        quantile = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        rows.append([name, str(len(values)), f"{quantile(0.1):.1f}", f"{statistics.median(values):.1f}", f"{quantile(0.9):.1f}"])
    return rows


#: Where the taping-area box comparison is kept (regenerated like the crack widths).
TAPING_BOXES = REPO / "docs/results/experiments/taping-boxes.json"


def taping_boxes() -> list[str]:
    """On the quickstart's joint photos: IoU of the filled boxes (the real export's only taping truth, which
    training and the real-photo scores use) against the exact bands, and the shipped model's IoU there."""
    if stale(TAPING_BOXES):
        from drywallqa.data import AnnotatedDataset
        from drywallqa.data.synthetic import JOINTS_DATASET
        from drywallqa.evaluation.metrics import get_stats, iou_score
        from drywallqa.files import read_image
        from drywallqa.inference import load_predictor

        predictor = load_predictor(None)
        images = []
        for seed, root, truths in quickstart_scenes():
            for sample in AnnotatedDataset.load(root / JOINTS_DATASET, quiet=True).split("valid"):
                band = truths[(str(sample.image_path.resolve()), "taping_area")]
                if not band.any():
                    continue
                mask = predictor.predict(read_image(sample.image_path), "segment taping area").mask
                images.append({"seed": seed, "image": sample.image_path.name,
                               "box_vs_band_iou": iou_score(*get_stats(sample.mask("taping_area"), band)),
                               "model_vs_band_iou": iou_score(*get_stats(mask, band))})
        TAPING_BOXES.write_text(json.dumps({"shipped_model": shipped_model_id(), "seeds": list(QUICKSTART_SEEDS),
                                            "images": images}, indent=1))
    images = json.loads(TAPING_BOXES.read_text())["images"]
    boxes, model = [i["box_vs_band_iou"] for i in images], [i["model_vs_band_iou"] for i in images]
    return [
        "", "## Taping areas: the real export's filled boxes against the exact bands", "",
        f"On the quickstart's joint photos with a drawn joint (seeds {', '.join(map(str, QUICKSTART_SEEDS))}, valid, "
        f"{len(images)} photos; the shipped model's, kept in `{TAPING_BOXES.relative_to(REPO)}` like the widths): the real export's only "
        "taping-area truth is a box per joint, filled, which training on the real photos and every real-photo score "
        "use (the generated scenes in training bring exact bands); a box around a diagonal joint is mostly wall.", "",
        "| masks against the exact bands | mean IoU | median IoU |", "|---|---|---|",
        f"| filled boxes of the same joints | {statistics.mean(boxes):.2f} | {statistics.median(boxes):.2f} |",
        f"| shipped model's masks | {statistics.mean(model):.2f} | {statistics.median(model):.2f} |", "",
        f"Across photos, the model's IoU follows the boxes' (Pearson r {statistics.correlation(boxes, model):.2f}): "
        "where a box is far from its band, so is the model's mask.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=REPO / "docs/experiments.yaml")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=REPO / "docs/experiments.md")
    args = parser.parse_args()
    document = yaml.safe_load(args.rows.read_text())
    header = ["lever", "budget", "crack IoU", "taping-area IoU", "mean", "crack width ratio", "confidence r (crack / taping)",
              "wrong-prompt FP pixels (worst class)"]
    lines = [
        "# Experiments: levers measured on the carved validation groups",
        "",
        f"Generated by `python scripts/experiments.py` from `{args.rows.relative_to(REPO)}`; do not edit by hand.",
        "",
        *(line for line in document.get("intro", "").strip().splitlines()),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for entry in document["rows"]:
        lines.append("| " + " | ".join(row(entry, args.data)) + " |")
    checks = [r for r in (quickstart_check(entry) for entry in document["rows"]) if r]
    if checks:
        header = ["lever", "seeds", "crack verdicts as the exact masks'", "taping-area verdicts as the exact masks'",
                  "crack IoU vs exact masks", "taping-area IoU vs exact masks",
                  "empty masks on drawn structure with confidence > 0.5 (their confidences)"]
        seeds = ", ".join(str(s) for s in QUICKSTART_SEEDS)
        lines += ["", f"## The first run: `drywallqa quickstart` on its sample data (seeds {seeds}; scenes no model trained on)",
                  "", "Counts are summed and IoUs averaged over the images of the seeds' validation splits (\"all\": every seed "
                  "above, on the generator's current sample data; rows whose model is no longer here keep what they were "
                  "measured on). A verdict is right when "
                  "it is the one the same QA rules give the generator's exact mask: a crack photo without a crack, or with "
                  "one too short for the rules, should pass; a joint photo whose joint is out of frame should be not found "
                  "(measured before the state existed: should fail, which the same masks get right or wrong alike).", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(check) + " |" for check in checks)]
    widths = crack_widths(args.data)
    lines += ["", "## Crack widths: the real export's labels, the generator's exact masks, the shipped model's masks", "",
              "The QA figure width_mean_px (mean local width along each crack's skeleton) of every crack mask, scaled to "
              "a 640 px wide image (the real photos' size; the quickstart's are 384 px), of the shipped model (kept in "
              f"`{CRACK_WIDTHS.relative_to(REPO)}` with its weights' hash; measured again when they change).", "",
              "| masks | cracks | p10 | median | p90 |", "|---|---|---|---|---|", *("| " + " | ".join(r) + " |" for r in widths)]
    lines += taping_boxes()
    lines += ["", *(f"- {note}" for note in document.get("notes", [])), ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
