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
QUICKSTART_SEEDS = (0, 1, 2, 3)


def quickstart_check(entry: dict) -> list[str] | None:
    """The row's model on `drywallqa quickstart` (sample data, seeds 0-3): verdicts and IoU against the
    generator's exact masks, from ``entry["quickstart"]`` (run and written when missing)."""
    if not entry.get("quickstart"):
        return None
    path = REPO / entry["quickstart"]
    model = REPO / entry["model"] if entry.get("model") else None
    if not path.is_file():
        if model is None or not (model / "config.json").is_file():
            return None
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for seed in QUICKSTART_SEEDS:
                subprocess.run(["drywallqa", "quickstart", f"{tmp}/{seed}", "--model", str(model), "--seed", str(seed)],
                               check=True, stdout=subprocess.DEVNULL)
            summary = {"seeds": list(QUICKSTART_SEEDS)}
            for dataset in ("cracks", "drywall-join"):
                records = [json.loads(line) for seed in QUICKSTART_SEEDS
                           for line in (Path(tmp) / str(seed) / "predictions" / dataset / "results.jsonl").read_text().splitlines()
                           if line.strip()]
                # Empty masks where the generator drew the structure: the confidence must say so.
                missed = [r for r in records if r["figures"]["area_px"] == 0 and r["truth"]["truth_pixels"] > 0]
                summary[dataset] = {
                    "verdicts": {v: sum(r["verdict"] == v for r in records) for v in ("fail", "pass", "unchecked")},
                    "iou_vs_truth": statistics.mean(r["truth"]["iou"] for r in records),
                    "empty_masks_on_visible_structure": len(missed),
                    "of_them_confidence_above_half": sum(r["figures"]["confidence"] > 0.5 for r in missed),
                    "their_confidences": [r["figures"]["confidence"] for r in missed],
                }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
    summary = json.loads(path.read_text())
    cracks, joints = summary["cracks"], summary["drywall-join"]
    missed = sum(s["empty_masks_on_visible_structure"] for s in (cracks, joints))
    confident = sum(s["of_them_confidence_above_half"] for s in (cracks, joints))
    confidences = ", ".join(f"{c:.2f}" for s in (cracks, joints) for c in s["their_confidences"])
    return [
        entry["lever"],
        f"{cracks['verdicts']['fail']} fail / {sum(cracks['verdicts'].values())}",
        f"{joints['verdicts']['pass']} pass / {sum(joints['verdicts'].values())}",
        f"{cracks['iou_vs_truth']:.2f}", f"{joints['iou_vs_truth']:.2f}",
        f"{confident} of {missed}" + (f" ({confidences})" if confidences else ""),
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
        header = ["lever", "crack images failing (all should)", "joint images passing (all should)",
                  "crack IoU vs exact masks", "taping-area IoU vs exact masks",
                  "empty masks on drawn structure with confidence > 0.5 (their confidences)"]
        seeds = ", ".join(str(s) for s in QUICKSTART_SEEDS)
        lines += ["", f"## The first run: `drywallqa quickstart` on its sample data (seeds {seeds}; scenes no model trained on)",
                  "", "Counts are summed and IoUs averaged over the images of all four seeds' validation splits.", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(check) + " |" for check in checks)]
    lines += ["", *(f"- {note}" for note in document.get("notes", [])), ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
