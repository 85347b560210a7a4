"""Straight joints in a photo: the strongest line through a ridge response, the profile across it,
the edges of a bright band in that profile, and the band drawn as a mask.

The geometry under :mod:`drywallqa.qa.taping_band`; coordinates are pixel centres, ``(x, y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.qa.nanstats import nanmedian

KINDS = ("seam", "compound")


@dataclass(frozen=True)
class JointLine:
    """One joint found in the photo, in the photo's pixel coordinates.

    Attributes:
        kind: ``"seam"`` (a bare seam's gap) or ``"compound"`` (a bright band of joint compound).
        point: ``(x, y)`` of a point on the joint's centre line.
        direction: Unit ``(dx, dy)`` along the joint.
        offsets: ``(low, high)`` signed distances of the band's edges from the line, along the
            normal ``(-dy, dx)``, in pixels.
        contrast: The joint's contrast against the wall (the smaller side), grey ``[0, 1]``.
    """

    kind: str
    point: tuple[float, float]
    direction: tuple[float, float]
    offsets: tuple[float, float]
    contrast: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def width_px(self) -> float:
        """The band's width across the joint."""
        return self.offsets[1] - self.offsets[0]


def strongest_line(
    response: np.ndarray, coarse_deg: float = 2.0, fine_deg: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """``(point, unit direction)`` of the straight line with the largest summed response (Radon
    transform: coarse angles on a copy reduced to 160 px, then fine ones at full size)."""
    import cv2

    height, width = response.shape
    factor = min(1.0, 160.0 / max(height, width))
    small = response
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(response, size, interpolation=cv2.INTER_AREA)
    angles = np.arange(0.0, 180.0, coarse_deg)
    sums, _ = radon(small, angles)
    best = angles[np.unravel_index(np.argmax(sums), sums.shape)[0]]
    angles = np.arange(best - coarse_deg, best + coarse_deg + 1e-6, fine_deg)
    sums, matrices = radon(response, angles)
    i, column = np.unravel_index(np.argmax(sums), sums.shape)
    # Column ``column`` of the rotated canvas is the line; map two of its points back.
    inverse = cv2.invertAffineTransform(matrices[i])
    p0 = inverse @ np.array([column, 0.0, 1.0])
    p1 = inverse @ np.array([column, 1.0, 1.0])
    return p0, (p1 - p0) / np.linalg.norm(p1 - p0)


def radon(image: np.ndarray, angles_deg: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Column sums of ``image`` rotated by each angle onto a canvas holding it whole, and the
    rotation matrices (image -> canvas)."""
    import cv2

    height, width = image.shape
    side = math.ceil(math.hypot(height, width)) + 2
    sums = np.empty((len(angles_deg), side), dtype=np.float32)
    matrices = []
    for i, angle in enumerate(angles_deg):
        matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), float(angle), 1.0)
        matrix[:, 2] += (side / 2.0 - width / 2.0, side / 2.0 - height / 2.0)
        sums[i] = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR).sum(axis=0)
        matrices.append(matrix)
    return sums, matrices


def along_inside(point: np.ndarray, direction: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Positions along the line (pixels from ``point``) whose pixel lies in ``region``."""
    reach = math.hypot(*region.shape)
    along = np.arange(-reach, reach, 1.0)
    xs = np.round(point[0] + along * direction[0]).astype(int)
    ys = np.round(point[1] + along * direction[1]).astype(int)
    inside = (xs >= 0) & (xs < region.shape[1]) & (ys >= 0) & (ys < region.shape[0])
    on = np.zeros(along.size, dtype=bool)
    on[inside] = region[ys[inside], xs[inside]] > 0
    return along[on]


def across_profile(
    gray: np.ndarray, point: np.ndarray, direction: np.ndarray, along: np.ndarray, across: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The photo's profile across a line: at each offset ``across`` on the normal, the median of
    the grey levels at the positions ``along`` the line; and whether that offset lies in the photo
    for most of them (``(len(across),)`` float32 and bool)."""
    import cv2

    normal = np.array([-direction[1], direction[0]])
    xs = (point[0] + along[:, None] * direction[0] + across[None, :] * normal[0]).astype(np.float32)
    ys = (point[1] + along[:, None] * direction[1] + across[None, :] * normal[1]).astype(np.float32)
    samples = cv2.remap(gray, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    inside = ~np.isnan(samples)
    valid = inside.mean(axis=0) > 0.5
    profile = np.zeros(across.size, dtype=np.float32)
    profile[valid] = nanmedian(samples[:, valid], axis=0)  # the median resists screws and specks
    return profile, valid


def compound_edges(profile: np.ndarray, valid: np.ndarray, smooth_px: float, centre: int) -> tuple[float, float, float]:
    """``(low edge, high edge, contrast)`` of the bright band around index ``centre``.

    On each side, the descent from the peak is followed until the profile rises again (another
    band, a brighter wall); the edge is its steepest point (sub-pixel), which a smooth opacity ramp
    puts at half opacity whatever the wall's level. A side that reaches the photo's frame (or the
    profile's end) with little descent and no steep edge runs out of it: the band ends there.
    Contrast is the smaller descent of the two sides.
    """
    import cv2

    weight = valid.astype(np.float32)

    def blur(values: np.ndarray) -> np.ndarray:
        blurred: np.ndarray = cv2.GaussianBlur(values[None, :], (0, 0), smooth_px)[0]
        return blurred

    smooth = blur(profile * weight) / np.maximum(blur(weight), 1e-6)
    # Not next to an invalid sample: the smoothing mixes padding zeros in there.
    usable = cv2.erode(valid.view(np.uint8)[None, :], np.ones((1, 3), np.uint8))[0].astype(bool)
    n = smooth.size
    near = slice(max(0, centre - 3), min(n, centre + 4))
    peak_at = near.start + int(np.argmax(np.where(usable[near], smooth[near], -np.inf)))
    peak = float(smooth[peak_at])
    overall = peak - float(smooth[usable].min()) if usable.any() else 0.0
    slope = np.gradient(smooth)
    sides = []
    for step in (-1, 1):
        lowest, i, steepest, steepest_at = peak, peak_at, 0.0, None
        while 0 <= i + step < n and usable[i + step]:
            i += step
            if smooth[i] > lowest + max(0.3 * (peak - lowest), 0.2 * overall, 1.0 / 255.0):
                break  # rising again: past this band's wall
            lowest = min(lowest, float(smooth[i]))
            descent = -step * slope[i]
            if descent > steepest:
                steepest, steepest_at = descent, i
        at_frame = not (0 <= i + step < n and usable[i + step])
        sides.append((peak - lowest, steepest, steepest_at, i, at_frame))
    top = max(side[0] for side in sides)
    edges = []
    for index, (step, (descent, steepest, at, end, at_frame)) in enumerate(zip((-1, 1), sides)):
        other_steepest = sides[1 - index][1]
        if at is None or (at_frame and descent < 0.35 * top and steepest < 0.35 * other_steepest):
            edges.append(end + step * 0.5)
            continue
        offset = 0.0
        if 0 < at < n - 1:  # parabola through the steepest point and its neighbours
            a, b, c = -step * slope[at - 1], steepest, -step * slope[at + 1]
            if a - 2 * b + c != 0:
                offset = float(np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5))
        edges.append(at + offset)
    return edges[0], edges[1], float(min(side[0] for side in sides))


def draw_band(line: JointLine, window: tuple[int, int, int, int]) -> np.ndarray:
    """The band of ``line`` inside ``window`` ``(y0, y1, x0, x1)``: ``(y1 - y0, x1 - x0)`` bool.

    A pixel is in the band when its centre's signed distance from the line lies within the
    band's offsets.
    """
    y0, y1, x0, x1 = window
    (px, py), (dx, dy), (low, high) = line.point, line.direction, line.offsets
    across_x = ((np.arange(x0, x1, dtype=np.float32) - px) * -dy)[None, :]
    across_y = ((np.arange(y0, y1, dtype=np.float32) - py) * dx)[:, None]
    distance = across_x + across_y
    return (distance >= low) & (distance <= high)
