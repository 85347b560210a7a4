"""A crack's measured profile as a small inline SVG, for the HTML report's rows.

The record of a crack whose width was measured on the photo carries one profile across the crack
(``width_profile``, :meth:`drywallqa.qa.crack_width.WidthProfile.to_dict`): the photo's brightness
along the normal, the wall level the dip is measured against, and the dip's half-depth crossings.
:func:`width_profile_svg` draws it from those numbers alone (no plotting library), so the report
shows how the width was read: a dip that is no dip, or a wall level off the wall, is seen at once.
"""

from __future__ import annotations

import html
import math

WIDTH, HEIGHT = 220, 110
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 6, 6, 16, 18


def width_profile_svg(profile: dict | None) -> str:
    """An inline ``<svg>`` of one measured profile, or ``""`` when there is none (or it is malformed).

    Brightness is drawn upwards, so the crack is the dip; the dashed line is the wall level, the
    red segment the half-depth level between the two crossings, and the caption gives the width
    and how it was read (``half-depth``, or ``darkness`` for lines too thin for the blur).

    Args:
        profile: A record's ``width_profile``: ``offsets_px``, ``samples``, ``wall`` (at the first
            and last offset), ``depth``, ``edges_px``, ``width_px``, ``method``, ``x_px``, ``y_px``.

    Example:
        >>> svg = width_profile_svg({"offsets_px": [-2, -1, 0, 1, 2], "samples": [200, 200, 60, 200, 200],
        ...     "wall": [200, 200], "depth": 140, "edges_px": [-0.5, 0.5], "width_px": 1.0,
        ...     "method": "half-depth", "x_px": 10, "y_px": 20})
        >>> svg.startswith("<svg") and "1 px" in svg
        True
    """
    if profile is None:
        return ""
    try:
        offsets = [float(v) for v in profile["offsets_px"]]
        samples = [float(v) for v in profile["samples"]]
        wall_first, wall_last = (float(v) for v in profile["wall"])
        left, right = (float(v) for v in profile["edges_px"])
        depth, width = float(profile["depth"]), float(profile["width_px"])
        method, x, y = str(profile["method"]), float(profile["x_px"]), float(profile["y_px"])
    except (TypeError, KeyError, ValueError):
        return ""
    numbers = [*offsets, *samples, wall_first, wall_last, left, right, depth, width, x, y]
    if len(offsets) < 2 or len(offsets) != len(samples) or not all(math.isfinite(v) for v in numbers):
        return ""
    first, last = offsets[0], offsets[-1]
    span = (last - first) or 1.0
    low = min(*samples, wall_first - depth, wall_last - depth)
    high = max(*samples, wall_first, wall_last)
    rise = (high - low) or 1.0

    def px(offset: float) -> float:
        return _PAD_LEFT + (offset - first) / span * (WIDTH - _PAD_LEFT - _PAD_RIGHT)

    def py(value: float) -> float:
        return _PAD_TOP + (high - value) / rise * (HEIGHT - _PAD_TOP - _PAD_BOTTOM)

    def wall_at(offset: float) -> float:
        return wall_first + (wall_last - wall_first) * (offset - first) / span

    centre = (left + right) / 2
    half = wall_at(centre) - depth / 2
    line = " ".join(f"{px(o):.1f},{py(v):.1f}" for o, v in zip(offsets, samples))
    caption = f"width {_number(width)} px ({method}) at x {x:.0f}, y {y:.0f}"
    bottom = HEIGHT - 4
    return (
        f'<svg class="profile" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(caption, quote=True)}">'
        f"<title>brightness across the crack: {html.escape(caption)}</title>"
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#d9dde3"/>'
        f'<line x1="{px(first):.1f}" y1="{py(wall_first):.1f}" x2="{px(last):.1f}" y2="{py(wall_last):.1f}" '
        'stroke="#6b7682" stroke-dasharray="4 3"/>'
        f'<polyline points="{line}" fill="none" stroke="#1f2a36" stroke-width="1.5"/>'
        f'<line x1="{px(left):.1f}" y1="{py(half):.1f}" x2="{px(right):.1f}" y2="{py(half):.1f}" '
        'stroke="#c62828" stroke-width="2"/>'
        + "".join(f'<line x1="{px(e):.1f}" y1="{_PAD_TOP}" x2="{px(e):.1f}" y2="{HEIGHT - _PAD_BOTTOM}" '
                  'stroke="#c62828" stroke-width="0.8"/>' for e in (left, right))
        + f'<text x="{_PAD_LEFT}" y="11" font-size="10" fill="#3b4550">wall (dashed), half depth (red)</text>'
        f'<text x="{_PAD_LEFT}" y="{bottom}" font-size="10" fill="#3b4550">{html.escape(caption)}</text>'
        "</svg>"
    )


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
