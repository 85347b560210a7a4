"""Cracks of known width, rendered like photos: the ground truth of the photo crack width.

:func:`render_width_target` draws one crack of a given width (0.5 to 8 px and beyond) across a
generated wall (the sample data's own wall texture, :mod:`.painting`) and then degrades it the way
a camera does: the line is anti-aliased (each pixel darkened by the share of its area the crack
covers, computed on an 8 x 8 sub-pixel grid at the crack's edges), lit unevenly, blurred by the
lens, given sensor noise and JPEG-compressed. The crack's centre line is a gently wandering curve
that crosses the whole picture, so it has no ends and every point of it has the same width.

Nothing here draws the ``drywallqa sample-data`` scenes: their random streams, and so their
bytes, do not depend on this module. ``scripts/crack_width_validation.py`` measures these targets
(docs/qa-validation.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from drywallqa.data.synthetic.painting import _render_wall
from drywallqa.errors import ConfigError

__all__ = ["WidthTarget", "render_width_target"]

#: Ranges the photo conditions are drawn from when not given: lens blur (Gaussian sigma, px),
#: sensor noise (sigma, grey levels), JPEG quality, the crack's darkness (share of the wall's
#: brightness its inside loses) and the brightness change across the picture (uneven light).
CONDITION_RANGES = {
    "blur_sigma": (0.3, 0.8), "noise_sigma": (1.0, 4.0), "jpeg_quality": (70, 92),
    "contrast": (0.35, 0.75), "light_gradient": (0.0, 0.35),
}
_WALLS = ("primer", "warm white", "beige", "light grey", "board")
_SUBSAMPLES = 8  # per pixel side, at the crack's edges


@dataclass(frozen=True)
class WidthTarget:
    """A rendered crack of known width and its masks.

    Attributes:
        image: The photo, RGB ``uint8`` ``(S, S, 3)`` (after blur, noise and JPEG).
        width_px: The crack's true width in pixels.
        centre_distance: ``(S, S)`` float32 distance of each pixel's centre to the crack's centre line.
        band_distance: ``(S, S)`` float32 distance of each pixel's centre to a model-like band's
            centre line, which wanders up to ``band_offset_px`` to either side of the crack's.
        band_offset_px: Largest offset of the band's centre line from the crack's.
        conditions: The photo conditions used (see :data:`CONDITION_RANGES`).
    """

    image: np.ndarray
    width_px: float
    centre_distance: np.ndarray = field(repr=False)
    band_distance: np.ndarray = field(repr=False)
    band_offset_px: float = 0.0
    conditions: dict = field(default_factory=dict)

    @property
    def exact_mask(self) -> np.ndarray:
        """The crack's own pixels: centres within half the width of the centre line, at least the
        1 px wide digital line for thinner cracks (an 8-connected line of pixels)."""
        return self.centre_distance <= max(self.width_px, 1.0) / 2

    def band_mask(self, margin_px: float = 4.0) -> np.ndarray:
        """A model-like band: ``margin_px`` wider than the crack on each side, around a centre line
        that wanders off the crack's, so the crack is not in the band's middle."""
        return self.band_distance <= max(self.width_px, 1.0) / 2 + margin_px


def render_width_target(
    width_px: float,
    seed: int = 0,
    *,
    size: int = 192,
    blur_sigma: float | None = None,
    noise_sigma: float | None = None,
    jpeg_quality: int | None = None,
    contrast: float | None = None,
    light_gradient: float | None = None,
    band_offset_px: float = 1.5,
) -> WidthTarget:
    """Render one crack of known width on a generated wall, with camera blur, noise and JPEG.

    Conditions left as None are drawn from :data:`CONDITION_RANGES` with the seed.

    Args:
        width_px: True width of the crack in pixels (> 0).
        seed: Seed of the wall, the crack's path and the drawn conditions.
        size: Width and height of the picture in pixels.
        blur_sigma: Gaussian lens blur in pixels (0 for none).
        noise_sigma: Sensor noise in grey levels.
        jpeg_quality: JPEG quality 1-100, or 0 for no compression.
        contrast: Share of the wall's brightness the crack's inside loses (0-1).
        light_gradient: Relative brightness change across the picture.
        band_offset_px: Largest offset of the model-like band's centre line from the crack's.

    Returns:
        The target.

    Example:
        >>> target = render_width_target(3.0, seed=1)
        >>> target.image.shape, bool(target.exact_mask.any())
        ((192, 192, 3), True)
    """
    if not (math.isfinite(width_px) and width_px > 0):
        raise ConfigError(f"width_px must be a positive number, got {width_px!r}")
    if size < 32:
        raise ConfigError(f"size must be >= 32 pixels, got {size!r}")
    rng = np.random.default_rng([3, int(seed), int(round(width_px * 1000))])
    drawn = {name: (rng.uniform(*bounds) if name != "jpeg_quality" else int(rng.integers(bounds[0], bounds[1] + 1)))
             for name, bounds in CONDITION_RANGES.items()}
    given = {"blur_sigma": blur_sigma, "noise_sigma": noise_sigma, "jpeg_quality": jpeg_quality,
             "contrast": contrast, "light_gradient": light_gradient}
    conditions = {name: drawn[name] if value is None else value for name, value in given.items()}
    if not 0 < conditions["contrast"] <= 1:
        raise ConfigError(f"contrast must be in (0, 1], got {conditions['contrast']!r}")

    wall, _ = _render_wall(rng, size, str(rng.choice(_WALLS)))
    path = _crack_path(rng, size)
    centre_distance = _distance_to_path(path, size)
    offsets = band_offset_px * np.sin(np.linspace(0.0, rng.uniform(1.0, 3.0) * math.pi, len(path)) + rng.uniform(0, 6.3))
    band_distance = _distance_to_path(path + offsets[:, None] * _path_normals(path), size)
    coverage = _coverage(path, centre_distance, width_px / 2)

    tint = np.array([1.0, 0.97, 0.92], dtype=np.float32)  # crack interiors look slightly brown
    image = wall * (1.0 - conditions["contrast"] * coverage)[..., None] ** tint
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    image *= (1.0 + conditions["light_gradient"] * (xs * math.cos(angle) + ys * math.sin(angle)))[..., None]
    if conditions["blur_sigma"] > 0:
        image = cv2.GaussianBlur(image, (0, 0), float(conditions["blur_sigma"]))
    image += float(conditions["noise_sigma"]) * rng.standard_normal(image.shape, dtype=np.float32)
    pixels = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if conditions["jpeg_quality"]:
        ok, data = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(conditions["jpeg_quality"])])
        pixels = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return WidthTarget(pixels, float(width_px), centre_distance, band_distance, float(band_offset_px), conditions)


def _crack_path(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gently wandering centre line across the whole picture, ``(K, 2)`` float64 points 2 px apart.

    The direction wanders around a main heading (an AR(1) deviation of about 9 degrees), so the
    line bends like a crack but never loops back on itself.
    """
    heading = rng.uniform(0, 2 * math.pi)
    centre = rng.uniform(0.35, 0.65, 2) * size
    halves = []
    for direction in (heading + math.pi, heading):
        wander, points = 0.0, [centre]
        for _ in range(int(size * 0.9)):
            wander = 0.95 * wander + rng.normal(0.0, 0.05)
            angle = direction + wander
            points.append(points[-1] + 2.0 * np.array([math.cos(angle), math.sin(angle)]))
        halves.append(points)
    return np.array(halves[0][:0:-1] + halves[1])


def _path_normals(path: np.ndarray) -> np.ndarray:
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def _segment_distance(px: np.ndarray, py: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Euclidean distance of points ``(px, py)`` (any equal shapes) to the polyline ``path``."""
    best = np.full(px.shape, np.inf, dtype=np.float64)
    for (ax, ay), (bx, by) in zip(path[:-1], path[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        np.minimum(best, np.hypot(px - ax - t * dx, py - ay - t * dy), out=best)
    return best


def _distance_to_path(path: np.ndarray, size: int) -> np.ndarray:
    """Distance of every pixel centre to the polyline: exact within 12 px of it, capped beyond."""
    # Rasterise the path coarsely first, so exact distances are only computed near it.
    near = np.zeros((size, size), np.uint8)
    cv2.polylines(near, [np.round(path).astype(np.int32)], False, 1, thickness=1)
    rough = cv2.distanceTransform(1 - near, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    out = np.full((size, size), 13.0, dtype=np.float32)
    ys, xs = np.nonzero(rough <= 13.0)
    # Only the path's segments near these pixels matter; all of them is simple and fast enough.
    out[ys, xs] = _segment_distance(xs.astype(np.float64), ys.astype(np.float64), path)
    return out


def _coverage(path: np.ndarray, centre_distance: np.ndarray, half_width: float) -> np.ndarray:
    """Share of each pixel's area within ``half_width`` of the path, ``(S, S)`` float32."""
    coverage = (centre_distance <= half_width - 0.75).astype(np.float32)  # wholly inside
    edge_ys, edge_xs = np.nonzero(np.abs(centre_distance - half_width) < 0.75)
    if len(edge_ys):
        sub = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES - 0.5
        ox, oy = np.meshgrid(sub, sub)
        px = edge_xs[:, None] + ox.ravel()[None, :]
        py = edge_ys[:, None] + oy.ravel()[None, :]
        coverage[edge_ys, edge_xs] = (_segment_distance(px, py, path) <= half_width).mean(axis=1)
    return coverage
