"""One self-contained HTML inspection report from a ``predict`` run.

The file holds everything it shows: overlays as base64 JPEG thumbnails, CSS inline, no script and
no external URL, so it opens offline, can be mailed, and shows the same anywhere. The photos'
verdicts (:func:`~drywallqa.qa.photo_verdict`) are counted first. Rows go worst-first: failed masks
first, then by severity (how far the worst figure is past, or how close it is to, its bound), so
the masks to look at are on top; a photo with no joint shows its taping as ``not found``, never
among the fails.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from drywallqa import __version__
from drywallqa.errors import DataError
from drywallqa.files import atomic_write_text, read_image, read_json
from drywallqa.inference import Prediction, Predictions
from drywallqa.inference.predictions import SUMMARY_FILE, results_file
from drywallqa.inference.render import jpeg_bytes
from drywallqa.paths import data_file
from drywallqa.qa.rules import VERDICTS
from drywallqa.serving.width_profile import width_profile_svg

THUMBNAIL_SIDE = 480
THUMBNAIL_QUALITY = 80
# Figure columns of the table: (figure name without unit, header, has a px/mm unit).
TABLE_FIGURES = (
    ("area_percent", "area %", False),
    ("components", "parts", False),
    ("length", "length", True),
    ("longest", "longest", True),
    ("width_max", "width max", True),
    ("width_mean", "width mean", True),
    ("confidence", "confidence", False),
)

_CSS = """
:root { --fail: #c62828; --pass: #2e7d32; --not-found: #8a6d1f; --unchecked: #6d6d6d; --line: #d9dde3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d232b; background: #f4f6f8; }
header { background: #1f2a36; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #c5d0db; }
main { padding: 18px 28px 40px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 24px; }
.card.fail b { color: var(--fail); } .card.pass b { color: var(--pass); } .card.not-found b { color: var(--not-found); }
.card.photo { border-width: 2px; }
.settings { color: #4a5562; margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { padding: 8px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.fail td:first-child { border-left: 4px solid var(--fail); }
tr.pass td:first-child { border-left: 4px solid var(--pass); }
tr.not-found td:first-child { border-left: 4px solid var(--not-found); }
tr.unchecked td:first-child { border-left: 4px solid var(--unchecked); }
.pair { display: flex; gap: 6px; } .pair figure { margin: 0; } .pair figcaption { color: #4a5562; font-size: 12px; }
.pair figcaption b.wrong { color: var(--fail); }
img.thumb { width: 220px; border-radius: 4px; display: block; cursor: zoom-in; outline: none; }
img.thumb:focus { width: min(90vw, 480px); cursor: zoom-out; }
svg.profile { display: block; margin-top: 6px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600;
         text-transform: uppercase; font-size: 12px; white-space: nowrap; }
.badge.fail { background: var(--fail); } .badge.pass { background: var(--pass); }
.badge.unchecked { background: var(--unchecked); } .badge.not-found { background: var(--not-found); }
.reasons { margin: 6px 0 0; padding-left: 16px; color: var(--fail); }
.file { font-weight: 600; overflow-wrap: anywhere; }
td.name { min-width: 160px; } td.verdict { min-width: 190px; }
.muted { color: #6b7682; }
dl { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 18px; }
dt { font-weight: 600; margin-top: 6px; }
dd { margin-left: 18px; color: #3b4550; }
"""

_DEFINITIONS = (
    ("area %", "mask pixels as a percentage of the image's pixels"),
    ("parts", "8-connected mask components of at least the QA rules file's min_component_area_px pixels"),
    ("length (crack)", ("summed skeleton length of the cracks: orthogonal steps 1 px, diagonal steps √2 px, ends extended "
                        "to the mask's edge")),
    ("length (taping)", "covered length: each band's area divided by its median width along the skeleton, summed"),
    ("longest", "length of the longest component"),
    ("width max / mean (crack)", ("measured on the photo across the dark line (the profile under the overlay): 95th "
                                  "percentile and 10 % trimmed mean of the widths along the crack; mask_width_* in "
                                  "results.csv keep the mask's band width")),
    ("width max / mean (taping)", ("local width 2·d − 1 on the skeleton (d: distance to the nearest background pixel); "
                                   "max over the skeleton, mean of the bands' median widths weighted by area")),
    ("confidence", "the model's own estimate of the mask's IoU"),
    ("severity", "largest ratio of a figure to its bound over the checked rules; above 1 means fail"),
    ("not found", ("nothing found (no part, or less area than the class's min_area_percent) for a class that is neither "
                   "a defect (no crack passes) nor required by the QA rules (then it fails): nothing to judge")),
    ("photo verdict", "fail if any of the photo's prompts fails, else pass if any passes, else not found"),
)


def sort_worst_first(predictions: Sequence[Prediction]) -> list[Prediction]:
    """Failed predictions first, then by descending severity; ties by image and prompt."""
    return sorted(predictions, key=lambda p: (p.verdict.verdict != "fail", -p.verdict.severity, p.image, p.prompt))


def render_report(predictions: Sequence[Prediction], folder: str | os.PathLike, *, summary: dict | None = None,
                  title: str = "Drywall QA report") -> str:
    """Render a run's predictions as one self-contained HTML page.

    Args:
        predictions: The predictions of a ``predict`` run (:meth:`drywallqa.inference.Predictions.read`).
        folder: The run's output folder; overlay paths are relative to it.
        summary: The run's ``summary.json`` (model, threshold, scale, skipped images), if any.
        title: Page title.

    Returns:
        The HTML text.
    """
    folder = Path(folder)
    summary = summary or {}
    predictions = Predictions(predictions)
    ordered = sort_worst_first(predictions)
    counts, photo_counts = predictions.verdict_counts(), predictions.verdict_counts(per_photo=True)
    by_photo = predictions.photo_verdicts()
    scale_known = any(p.mm_per_px for p in predictions)
    unit = "mm" if scale_known else "px"
    cards = [("photos", len(by_photo), "photo"),
             *((f"photos {v}", photo_counts[v], f"photo {_slug(v)}") for v in VERDICTS if photo_counts[v] or v != "unchecked"),
             ("masks", len(predictions), ""),
             *((f"masks {v}", counts[v], _slug(v)) for v in VERDICTS if counts[v] or v != "unchecked")]
    skipped = summary.get("skipped_images") or []
    if skipped:
        cards.append(("unreadable", len(skipped), ""))
    scored = [p.extra["truth"] for p in predictions if p.extra.get("truth")]
    if scored:
        cards.append((f"mean IoU vs truth ({len(scored)} masks)", f"{np.mean([t['iou'] for t in scored]):.2f}", ""))
        judged = [p for p in predictions if p.extra.get("truth", {}).get("verdict")]
        if judged:
            right = sum(p.verdict.verdict == p.extra["truth"]["verdict"] for p in judged)
            cards.append(("verdicts as the truth's", f"{right} of {len(judged)}", "" if right == len(judged) else "fail"))
    settings = [
        f"model <b>{_e(summary.get('model') or _first(predictions, 'model'))}</b>",
        (f"thresholds {_e(', '.join(f'{k} {v:g}' for k, v in sorted(summary['class_thresholds'].items())))} (calibrated)"
         if summary.get("class_thresholds") else f"threshold {_e(summary.get('threshold', _first(predictions, 'threshold')))}"),
        f"scale {_e(_first(predictions, 'mm_per_px'))} mm/px" if scale_known else "scale unknown (figures in pixels)",
        f"QA rules {_e(summary.get('qa_rules', summary.get('thresholds', 'built-in')))}",  # "thresholds": older runs
    ]
    header_cells = "".join(
        f"<th>{_e(label)}{f' ({unit})' if has_unit else ''}</th>" for _, label, has_unit in TABLE_FIGURES
    )
    rows = "\n".join(_row(i + 1, prediction, folder, unit, by_photo[prediction.image]) for i, prediction in enumerate(ordered))
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    skipped_html = ""
    if skipped:
        items = "".join(f"<li>{_e(s.get('file'))}: {_e(s.get('reason'))}</li>" for s in skipped)
        skipped_html = f"<h2>Unreadable images</h2><ul>{items}</ul>"
    definitions = "".join(f"<dt>{_e(term)}</dt><dd>{_e(text)}</dd>" for term, text in _DEFINITIONS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>{_e(title)}</h1><p>{_e(str(folder))} · generated {generated} · drywallqa {__version__}</p></header>
<main>
<div class="cards">{''.join(f'<div class="card {cls}"><b>{n}</b>{_e(label)}</div>' for label, n, cls in cards)}</div>
<p class="settings">{' · '.join(settings)}</p>
<table>
<thead><tr><th>#</th><th>overlay</th><th>image · prompt</th><th>verdict</th>{header_cells}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
{skipped_html}
<h2>Figures</h2>
<dl>{definitions}</dl>
</main>
</body>
</html>
"""


def write_report(results: str | os.PathLike, out: str | os.PathLike, *, title: str = "Drywall QA report") -> Path:
    """Read a ``predict`` run and write its HTML report.

    Args:
        results: The ``predict`` output folder or its ``results.jsonl``.
        out: The HTML file to write (atomically).
        title: Page title.

    Returns:
        The written path.
    """
    predictions, folder = Predictions.read(results), results_file(results).parent
    summary_path = folder / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.is_file() else {}
    return atomic_write_text(out, render_report(predictions, folder, summary=summary, title=title))


def _row(number: int, prediction: Prediction, folder: Path, unit: str, photo_verdict: str) -> str:
    verdict = prediction.verdict.verdict
    figures = prediction.figure_values
    cells = []
    for name, _, has_unit in TABLE_FIGURES:
        value = figures.get(f"{name}_{unit}" if has_unit else name)
        cells.append(f'<td class="num">{"–" if value is None else _e(_number(value))}</td>')
    reasons = prediction.verdict.reasons
    reasons_html = f'<ul class="reasons">{"".join(f"<li>{_e(r)}</li>" for r in reasons)}</ul>' if reasons else ""
    return (
        f'<tr class="{_slug(verdict)}"><td class="num">{number}</td>'
        f'<td>{_thumbnail(prediction, folder)}{width_profile_svg(prediction.figures.width_profile)}</td>'
        f'<td class="name"><div class="file">{_e(Path(prediction.image).name)}</div><div>{_e(prediction.prompt)}</div>'
        f'<div class="muted">{_e(prediction.class_name or "unknown class")} · {_e(prediction.figures.figure_set)}</div>'
        f'<div class="muted">photo: {_e(photo_verdict)}</div></td>'
        f'<td class="verdict"><span class="badge {_slug(verdict)}">{_e(verdict)}</span>'
        f'<div class="muted">severity {_e(_number(round(prediction.verdict.severity, 4)))}</div>{reasons_html}</td>'
        + "".join(cells) + "</tr>"
    )


def _thumbnail(prediction: Prediction, folder: Path) -> str:
    name = Path(prediction.image).name
    html_ = _image(folder, prediction.overlay_file, f"overlay of {name} for {prediction.prompt}")
    truth = prediction.extra.get("truth")
    if truth:
        # Where the true mask is known (the quickstart's sample data): the truth beside the prediction.
        html_ = (f'<div class="pair"><figure>{html_}<figcaption>prediction</figcaption></figure>'
                 f'<figure>{_image(folder, truth.get("overlay"), f"true mask of {name}")}<figcaption>truth · IoU {truth["iou"]:.2f}'
                 + _truth_verdict(truth.get("verdict"), prediction.verdict.verdict) + "</figcaption></figure></div>")
    return html_


def _truth_verdict(truth_verdict: str | None, verdict: str) -> str:
    """The true mask's verdict for a caption, marked when the prediction's differs."""
    if not truth_verdict:
        return ""
    if truth_verdict == verdict:
        return f" · {_e(truth_verdict)}"
    return f' · {_e(truth_verdict)} <b class="wrong">(predicted {_e(verdict)}: wrong)</b>'


def _image(folder: Path, name: object, alt: str) -> str:
    try:
        image = read_image(data_file(name, folder))  # a record names files in its run's folder only
    except DataError:
        return '<span class="muted">overlay missing</span>'
    data = base64.b64encode(jpeg_bytes(image, quality=THUMBNAIL_QUALITY, max_side=THUMBNAIL_SIDE)).decode("ascii")
    return f'<img class="thumb" tabindex="0" alt="{_e(alt)}" src="data:image/jpeg;base64,{data}">'


def _first(predictions: Sequence[Prediction], name: str):
    return next((getattr(p, name) for p in predictions if getattr(p, name) is not None), None)


def _number(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    value = float(value)
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _slug(verdict: str) -> str:
    """A verdict as a CSS class name (``"not found"`` -> ``not-found``)."""
    return _e(str(verdict).replace(" ", "-"))


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)
