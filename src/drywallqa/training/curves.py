"""The training-curves PNG written at the end of every run, from Lightning's CSV log."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from drywallqa.files import atomic_write


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{metric: [(step, value), ...]}`` from a Lightning ``metrics.csv`` (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in {"step", "epoch"} or value in (None, ""):
                    continue
                series[key].append((step, float(value)))
    return dict(series)


def plot_training_curves(metrics_csvs, out_png: str | os.PathLike) -> Path:
    """Plot loss parts, validation IoU/Dice per class and learning rates against the step.

    Args:
        metrics_csvs: One Lightning CSVLogger ``metrics.csv`` or several (a resumed run's
            attempts, in order); their series are concatenated.
        out_png: Where to write the figure (atomically).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = [metrics_csvs] if isinstance(metrics_csvs, (str, os.PathLike)) else list(metrics_csvs)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in paths:
        for key, points in read_metrics_csv(path).items():
            series[key].extend(points)
    panels = [
        ("training loss", [k for k in series if k.startswith("train/")]),
        ("validation IoU / Dice (mean over images)", [k for k in series if k.startswith(("val/iou", "val/dice"))]),
        ("validation loss, negatives' FP", [k for k in series if k in {"val/loss", "val/negative_fp"}]),
        ("learning rate", [k for k in series if k.startswith("lr")]),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in sorted(keys):
            steps, values = zip(*series[key])
            ax.plot(steps, values, label=key, marker="o" if len(steps) < 30 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=7)
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return out_png
