"""PNG plots of an :class:`~drywallqa.evaluation.report.EvalReport` (matplotlib, Agg, no pyplot).

Figures are built with :class:`matplotlib.figure.Figure` directly, so plotting never changes the
process's global backend or leaks pyplot state, and works without a display.
"""

from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path

import numpy as np

from drywallqa.files import atomic_write_bytes

# Overlay colours (RGB): truth only, prediction only, both.
TRUTH_COLOUR = (0, 190, 0)
PREDICTION_COLOUR = (230, 30, 30)
OVERLAP_COLOUR = (255, 215, 0)
OVERLAY_ALPHA = 0.6


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from drywallqa.errors import DrywallQAError

        raise DrywallQAError("plots need matplotlib: pip install matplotlib") from exc
    kwargs.setdefault("layout", "constrained")  # titles, legends and suptitles never overlap
    return Figure(**kwargs)


def _save(figure, path: Path) -> Path:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "class"


def overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Colour truth-only, prediction-only and overlapping pixels over an RGB image.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        truth: ``(H, W)`` bool.
        prediction: ``(H, W)`` bool.

    Returns:
        RGB ``uint8`` ``(H, W, 3)``: green = missed truth, red = false positive, yellow = hit.
    """
    out = image.astype(np.float32)
    for region, colour in (
        (truth & ~prediction, TRUTH_COLOUR),
        (prediction & ~truth, PREDICTION_COLOUR),
        (truth & prediction, OVERLAP_COLOUR),
    ):
        out[region] = (1 - OVERLAY_ALPHA) * out[region] + OVERLAY_ALPHA * np.asarray(colour, dtype=np.float32)
    return out.clip(0, 255).astype(np.uint8)


def write_plots(report, out_dir: str | os.PathLike) -> list[Path]:
    """Write the report's plots into ``out_dir``.

    Files: ``scores.png`` (per-class IoU and Dice, per-image mean with std error bars, pooled as
    markers), ``iou_histogram.png`` (per-image IoU per class), ``confidence.png`` (confidence vs
    per-image IoU), ``examples_<class>.png`` (best and worst images with overlays, when the report
    kept examples) and ``threshold_sweep.png`` (when the threshold was swept).

    Returns:
        The written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_scores_plot(report, out_dir / "scores.png"), _histogram_plot(report, out_dir / "iou_histogram.png"),
             _confidence_plot(report, out_dir / "confidence.png")]
    for name, sets in report.examples.items():
        if any(sets.values()):
            paths.append(_examples_plot(report, name, sets, out_dir / f"examples_{_slug(name)}.png"))
    if report.sweep is not None:
        paths.append(_sweep_plot(report, out_dir / "threshold_sweep.png"))
    return paths


def _subtitle(report) -> str:
    meta = report.metadata
    return f"{meta.predictor} on {meta.split}, threshold {meta.threshold_text()}"


def _scores_plot(report, path: Path) -> Path:
    classes = list(report.classes.values())
    fig = _figure(figsize=(max(4.5, 2.2 * len(classes) + 2), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    width = 0.36
    for offset, metric, label, colour in ((-width / 2, "iou", "IoU", "#3b75af"), (width / 2, "dice", "Dice", "#ef8636")):
        means = [getattr(c, metric).mean for c in classes]
        stds = [getattr(c, metric).std for c in classes]
        bars = ax.bar(x + offset, np.nan_to_num(means), width, yerr=np.nan_to_num(stds), capsize=4, color=colour,
                      label=f"{label} per-image mean ± std")
        pooled = [getattr(c, f"{metric}_pooled") for c in classes]
        ax.scatter(x + offset, pooled, marker="D", color="black", zorder=3, s=22,
                   label="pooled over pixels" if metric == "iou" else None)
        for bar, mean in zip(bars, means):
            if math.isfinite(mean):
                ax.annotate(f"{mean:.2f}", (bar.get_x() + bar.get_width() / 2, 0.02), ha="center", va="bottom",
                            fontsize=8, color="white")
    ax.set_xticks(x, [f"{c.class_name}\n({c.target}, n={c.images})" for c in classes])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"IoU and Dice per class\n{_subtitle(report)}", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _class_grid(n: int):
    cols = min(n, 3)
    return max(1, math.ceil(n / max(cols, 1))), max(cols, 1)


def _histogram_plot(report, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    names = list(report.classes)
    rows, cols = _class_grid(len(names))
    fig = _figure(figsize=(4.2 * cols, 3.2 * rows))
    bins = np.linspace(0, 1, 21)
    for i, name in enumerate(names or [""]):
        ax = fig.add_subplot(rows, cols, i + 1)
        ious = [r.iou for r in report.records if r.class_name == name and math.isfinite(r.iou)]
        ax.hist(ious, bins=bins, color="#3b75af", edgecolor="white")
        if name:
            c = report.classes[name]
            ax.axvline(c.iou.mean, color="black", linestyle="--", linewidth=1, label=f"mean {c.iou.mean:.3f}")
            ax.legend(fontsize=8)
        ax.set_title(f"{name}: per-image IoU (n={len(ious)})", fontsize=10)
        ax.set_xlabel("IoU")
        ax.set_ylabel("images")
        ax.set_xlim(0, 1)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(_subtitle(report), fontsize=9)
    return _save(fig, path)


def _confidence_plot(report, path: Path) -> Path:
    fig = _figure(figsize=(5, 4))
    ax = fig.add_subplot()
    for name, c in report.classes.items():
        recs = [r for r in report.records if r.class_name == name]
        r_text = f"{c.confidence_iou_pearson:+.2f}" if math.isfinite(c.confidence_iou_pearson) else "undefined"
        ax.scatter([r.confidence for r in recs], [r.iou for r in recs], s=12, alpha=0.6, label=f"{name} (r = {r_text})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("predicted confidence")
    ax.set_ylabel("true per-image IoU")
    ax.set_title(f"Confidence vs IoU\n{_subtitle(report)}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _examples_plot(report, name: str, sets: dict, path: Path) -> Path:
    from matplotlib.patches import Patch

    rows = [(label, sets.get(label, [])) for label in ("best", "worst") if sets.get(label)]
    cols = max(len(examples) for _, examples in rows)
    fig = _figure(figsize=(2.8 * cols, 3.0 * len(rows) + 0.6))
    for r, (label, examples) in enumerate(rows):
        for c in range(cols):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(examples):
                ax.set_axis_off()
                continue
            ex = examples[c]
            ax.imshow(overlay(ex.image, ex.truth, ex.prediction))
            stem = Path(ex.record.image).name
            stem = stem if len(stem) <= 26 else stem[:12] + "…" + stem[-12:]
            ax.set_title(f"IoU {ex.record.iou:.3f}  conf {ex.record.confidence:.2f}\n{stem}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=11)
    fig.legend(
        # matplotlib takes an RGB array as a colour; its ColorType stub does not say so.
        handles=[Patch(color=np.array(col) / 255, label=text) for col, text in (  # type: ignore[arg-type]
            (TRUTH_COLOUR, "truth only (missed)"), (PREDICTION_COLOUR, "prediction only (false positive)"),
            (OVERLAP_COLOUR, "both (hit)"))],
        loc="outside lower center", ncol=3, fontsize=8, frameon=False,
    )
    target = report.classes[name].target
    fig.suptitle(f"{name}: best and worst images by IoU (truth: {target})\n{_subtitle(report)}", fontsize=10)
    return _save(fig, path)


def _sweep_plot(report, path: Path) -> Path:
    sweep = report.sweep
    fig = _figure(figsize=(5, 3.8))
    ax = fig.add_subplot()
    ax.plot(sweep.thresholds, sweep.mean_iou, color="black", linewidth=2, label="mean over classes")
    for name, values in sweep.per_class.items():
        ax.plot(sweep.thresholds, values, linewidth=1, alpha=0.8, label=name)
    ax.axvline(sweep.chosen, color="red", linestyle="--", linewidth=1, label=f"chosen {sweep.chosen:g}")
    ax.set_xlabel("threshold")
    ax.set_ylabel("per-image mean IoU")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Threshold sweep on split {sweep.split!r} ({sweep.images} images)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
