#!/usr/bin/env python
"""Score the models a GPU call returned beside the shipped one, and say which to ship.

    python scripts/device/score_candidates.py --data ../shared/data --json OUT.json \\
        shipped=src/drywallqa/weights/promptunet device-finetune=runs/device-X/device-finetune/model ...
    (scripts/device/after.sh runs it)

Every model is scored on the same carved source groups (those of the first model's training
record, the shipped model's): the **validation** groups choose, the held-out **test** groups are
reported and never used to choose. Threshold 0.5 for all, so calibration plays no part. Its CPU
inference cost is ONNX Runtime fp32, batch 1, on ``--threads`` threads (the 2-core serving
machine's), the median of ``--runs`` forward passes at the model's input size, measured in turns
with the shipped model so that a busy machine slows all of them alike.

A candidate is shippable when it beats the shipped model on the validation groups for every
class and costs at most ``--max-cost`` times the shipped model; of those, the highest mean
validation IoU is chosen and the command that ships it is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from drywallqa.data import AnnotatedDataset
from drywallqa.evaluation import evaluate
from drywallqa.inference import load_predictor, load_runtime
from drywallqa.trainsets import resplit_like_training

DATASETS = ("cracks", "drywall-join")


def scores(model: str, datasets, split: str) -> dict[str, float]:
    predictor = load_predictor(model, threshold=0.5, say=None)
    report = evaluate(predictor, datasets, split=split, threshold=0.5, progress=False)
    return {name: round(float(c.iou.mean), 4) for name, c in sorted(report.classes.items())}


def cpu_costs(models: dict[str, str], threads: int, runs: int) -> dict[str, float]:
    """Median milliseconds of one batch-1 forward pass per model, measured in turns."""
    predictors = {label: load_runtime(path, "onnx", say=lambda line: None, intra_op_threads=threads, batch_size=1,
                                      allow_spinning=True) for label, path in models.items()}
    times: dict[str, list[float]] = {label: [] for label in models}
    inputs = {label: (np.random.default_rng(0).integers(0, 256, (1, p.image_size, p.image_size, 3), dtype=np.uint8),
                      ["segment crack"]) for label, p in predictors.items()}
    for label, predictor in predictors.items():
        predictor.forward_batch(*inputs[label])  # warm-up
    for _ in range(runs):
        for label, predictor in predictors.items():
            started = time.perf_counter()
            predictor.forward_batch(*inputs[label])
            times[label].append((time.perf_counter() - started) * 1000)
    return {label: round(float(np.median(values)), 2) for label, values in times.items()}


def _cell(scores: dict[str, float], name: str) -> str:
    """A class's IoU, or a dash where the split has no image of the class."""
    return f"{scores[name]:.4f}" if name in scores else "-"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="LABEL=MODEL_DIR", help="the shipped model first")
    parser.add_argument("--data", default="../shared/data", help="the root holding cracks/ and drywall-join/")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--max-cost", type=float, default=2.5, help="most a candidate may cost, times the shipped model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    models = dict(item.split("=", 1) for item in args.models)
    shipped_label = next(iter(models))

    datasets = [AnnotatedDataset.load(Path(args.data) / name) for name in DATASETS if (Path(args.data) / name).is_dir()]
    datasets = resplit_like_training(datasets, models[shipped_label])
    rows = {}
    for label, path in models.items():
        record_file = Path(path) / "training.json"
        budget = json.loads(record_file.read_text()).get("budget", {}) if record_file.is_file() else {}
        rows[label] = {"model": path, "valid": scores(path, datasets, "valid"), "test": scores(path, datasets, "test"),
                       "budget": budget}
    for label, ms in cpu_costs(models, args.threads, args.runs).items():
        rows[label]["cpu_ms"] = ms

    shipped = rows[shipped_label]
    classes = sorted({c for row in rows.values() for split in ("valid", "test") for c in row[split]})
    print(f"carved source groups of {models[shipped_label]}'s training record; threshold 0.5; mean IoU per class. "
          f"Validation chooses, test is reported only. CPU: ONNX Runtime fp32, batch 1, {args.threads} threads, "
          f"median of {args.runs}.")
    header = ["model", *(f"valid {c}" for c in classes), "valid mean", *(f"test {c}" for c in classes), "CPU ms",
              "x shipped", "trained on", "minutes", "train img/s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    shippable = []
    for label, row in sorted(rows.items(), key=lambda kv: -np.mean(list(kv[1]["valid"].values()))):
        row["valid_mean"] = round(float(np.mean(list(row["valid"].values()))), 4)
        row["cost_ratio"] = round(row["cpu_ms"] / shipped["cpu_ms"], 2)
        beats = label != shipped_label and all(row["valid"][c] > shipped["valid"][c] for c in shipped["valid"])
        row["shippable"] = beats and row["cost_ratio"] <= args.max_cost
        if row["shippable"]:
            shippable.append(label)
        budget = row["budget"]
        cells = [label, *(_cell(row["valid"], c) for c in classes), f"{row['valid_mean']:.4f}",
                 *(_cell(row["test"], c) for c in classes), f"{row['cpu_ms']:.1f}", f"{row['cost_ratio']:.2f}",
                 str(budget.get("hardware", "?")), str(budget.get("minutes", "?")), str(budget.get("train_images_per_s", "?"))]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "runs": args.runs, "max_cost": args.max_cost,
                                         "models": rows}, indent=2))
    if shippable:
        best = max(shippable, key=lambda label: rows[label]["valid_mean"])
        print(f"\n{best} beats the shipped model on the validation groups for every class at "
              f"{rows[best]['cost_ratio']:.2f}x its CPU cost; to ship it:")
        print(f"  python scripts/ship_model.py {rows[best]['model']} && bash scripts/evaluate_shipped.sh")
    else:
        print(f"\nno returned model beats the shipped model on the validation groups for every class within "
              f"{args.max_cost:g}x its CPU cost; keep it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
