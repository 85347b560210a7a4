"""Crack width measured on the photo: the dark line across the crack, not the mask's band.

A segmentation model (and the annotators it learned from) marks a crack as a band several pixels
wider than the crack itself, so the mask's width says more about the labelling than about the
wall. Here the width is read from the photo instead, where the crack is a dark line on the wall:

1. **Profiles across the crack.** At points along each crack component's skeleton (all of them,
   or an even subset of :data:`MAX_PROFILES`; points closer to a junction than its band's
   half-width are left out, since across a junction the dark region is two cracks meeting), the
   photo's brightness is sampled along the normal to the local skeleton direction (the principal
   axis of the nearest skeleton pixels of the same component), with bilinear interpolation
   (:func:`cv2.remap`) at the decoded photo's resolution, every :data:`PROFILE_STEP_PX` pixels (a
   16th of the band's half-width on the wide bands of large photos, at most
   :data:`MAX_PROFILE_STEP_PX`). Five parallel lines ±1 px along the crack are averaged, which
   halves noise and wall grain without widening the line.
2. **The dip.** The darkest point within the mask's band plus :data:`SEARCH_MARGIN_PX` on either
   side is the crack's centre, after a light smoothing across (:data:`SMOOTHING_PX`). The wall's
   brightness is the median of :data:`WALL_SPAN_PX` pixels of profile on each side, interpolated
   linearly across (uneven light): first just beyond the search window, to find the dip, then
   again :data:`FLANK_GAP_PX` beyond the dip's half-depth crossings, so a shallow shoulder beside
   the crack (a cast shadow) counts as wall. The depth is the wall's brightness minus the dip's.
   A profile whose dip is not clearly deeper than the noise of its wall samples, or without wall
   on the photo on both sides, is not measured.
3. **Its width.** The *half-depth width* is the distance between the two points where the
   profile crosses halfway from the wall to the dip's bottom (linear interpolation between
   samples: sub-pixel). It is the line's width when the line is wide enough for the dip to reach
   its full darkness, but blur makes lines under about twice the blur's width look as wide as the
   blur (and less dark). Their width comes from the *integrated darkness*: the area of the dip
   below the wall level (its darkness times its width, which blur does not change) divided by the
   full darkness of the crack's inside. A component with enough profiles of a half-depth width of
   at least :data:`RESOLVED_WIDTH_PX` (wide enough to reach the full darkness under ordinary
   blur) takes those profiles' half-depth widths, and their median relative depth as its full
   darkness for its thinner profiles. A component without them uses the darkness width
   throughout, with the larger of its own deepest dips (90th percentile) and
   :data:`TYPICAL_DEPTH` (a crack's inside is typically that much darker than the wall) as full
   darkness: the one assumption of the method, which matters only for lines under ~3 px.

The photo widths of a mask are then summarised by :func:`summarise_widths`: the mean is a 10 %
trimmed mean over the measured profiles, the max their 95th percentile (a single profile
crossing a branch or a stain does not set it). The validation on rendered cracks of known width,
with blur, noise and JPEG, is docs/qa-validation.md (``scripts/crack_width_validation.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from drywallqa.qa.nanstats import nanmedian

#: Finest distance between samples along a profile, in photo pixels.
PROFILE_STEP_PX = 0.25
#: Coarsest step, for the wide bands of large photos (the step is a 16th of the band's half-width).
MAX_PROFILE_STEP_PX = 1.0
#: Offsets along the crack of the parallel lines averaged into one profile, in photo pixels.
PARALLEL_OFFSETS_PX = (-1.0, -0.5, 0.0, 0.5, 1.0)
#: How far beyond the mask's band the dip is searched for, on each side.
SEARCH_MARGIN_PX = 2.0
#: Length of profile on each side, beyond the search window, whose median is the wall's brightness.
WALL_SPAN_PX = 4.0
#: Gap between the dip's half-depth crossings and the wall samples of the second pass.
FLANK_GAP_PX = 1.5
#: Fewest wall samples on each side of a measured profile (a profile at the photo's edge has fewer).
MIN_WALL_SAMPLES = 4
#: Gaussian smoothing across the crack before the dip's bottom is read (sigma, photo pixels).
SMOOTHING_PX = 0.35
#: At most this many profiles per mask, evenly spread over the skeleton.
MAX_PROFILES = 2000
#: A profile's dip must be this many times the noise of its wall samples.
MIN_DEPTH_NOISE_RATIO = 4.0
#: And at least this share of the wall's brightness.
MIN_RELATIVE_DEPTH = 0.04
#: A half-depth width at least this wide reaches the crack's full darkness under ordinary blur.
RESOLVED_WIDTH_PX = 3.0
#: Fewest such profiles (and share of a component's profiles) that give its own darkness.
MIN_RESOLVED_PROFILES, MIN_RESOLVED_SHARE = 5, 0.1
#: Darkness of a crack's inside, as a share of the wall's brightness, assumed for a component
#: too thin for its own to show.
TYPICAL_DEPTH = 0.5
#: Percentile of the profiles' widths reported as the maximum width.
WIDTH_MAX_PERCENTILE = 95.0
#: Share of the profiles cut from each end before the mean width is taken.
WIDTH_MEAN_TRIM = 0.1


@dataclass(frozen=True)
class WidthProfile:
    """One measured profile across a crack: what the report draws to show how the width was read.

    Attributes:
        x_px: Position of the profile's centre (skeleton point) in the photo, pixels.
        y_px: The same, vertical.
        offsets_px: ``(T,)`` positions of the samples across the crack, pixels.
        samples: ``(T,)`` brightness of the photo there (0-255 grey).
        wall: Wall brightness at the first and last offset (linear between them): the dip is
            measured against it.
        depth: Wall minus dip bottom, grey levels.
        edges_px: Offsets of the two half-depth crossings.
        width_px: The width this profile gave.
        method: ``"half-depth"`` or ``"darkness"`` (see the module docstring).
    """

    x_px: float
    y_px: float
    offsets_px: np.ndarray = field(repr=False)
    samples: np.ndarray = field(repr=False)
    wall: tuple[float, float]
    depth: float
    edges_px: tuple[float, float]
    width_px: float
    method: str

    def to_dict(self, scale: float = 1.0) -> dict:
        """JSON-ready, lengths multiplied by ``scale`` (file pixels per photo pixel)."""
        return {
            "x_px": round(self.x_px * scale, 1), "y_px": round(self.y_px * scale, 1),
            "offsets_px": [round(float(v) * scale, 3) for v in self.offsets_px],
            "samples": [round(float(v), 1) for v in self.samples],
            "wall": [round(float(v), 1) for v in self.wall], "depth": round(float(self.depth), 1),
            "edges_px": [round(float(v) * scale, 3) for v in self.edges_px],
            "width_px": round(float(self.width_px) * scale, 3), "method": self.method,
        }


@dataclass(frozen=True)
class PhotoWidths:
    """Widths of a mask's cracks measured on the photo.

    Attributes:
        widths_px: ``(N,)`` one width per measured profile, photo pixels.
        components: ``(N,)`` the component label of each.
        tried: Profiles sampled (measured or not).
        example: The profile whose width is nearest the reported maximum, or None.
    """

    widths_px: np.ndarray = field(repr=False)
    components: np.ndarray = field(repr=False)
    tried: int
    example: WidthProfile | None = field(default=None, repr=False)

    @property
    def measured(self) -> int:
        return int(len(self.widths_px))


def summarise_widths(widths: np.ndarray) -> tuple[float | None, float | None]:
    """``(mean, max)`` of per-profile widths: the 10 % trimmed mean and the 95th percentile.

    Example:
        >>> widths = np.array([2.0] * 96 + [0.1, 0.1, 40.0, 40.0])   # two profiles across a junction
        >>> summarise_widths(widths)
        (2.0, 2.0)
    """
    if len(widths) == 0:
        return None, None
    ordered = np.sort(np.asarray(widths, dtype=float))
    cut = int(len(ordered) * WIDTH_MEAN_TRIM)
    kept = ordered[cut:len(ordered) - cut] if len(ordered) > 2 * cut else ordered
    return float(kept.mean()), float(np.percentile(ordered, WIDTH_MAX_PERCENTILE))


def measure_photo_widths(
    image: np.ndarray,
    labels: np.ndarray,
    skeleton: np.ndarray,
    distance: np.ndarray,
    origin: tuple[int, int] = (0, 0),
) -> PhotoWidths:
    """Measure the dark line's width across every crack component of a mask, on the photo.

    Args:
        image: The photo, RGB ``uint8`` ``(H, W, 3)`` (or grey ``(H, W)``), at the mask's size.
        labels: ``(h, w)`` int component labels ``1..K`` (0 background) of the mask, or of a crop of
            it whose top-left pixel is ``origin`` in the photo.
        skeleton: ``(h, w)`` bool skeleton of the labelled components.
        distance: ``(h, w)`` float distance of each mask pixel to the nearest background pixel.
        origin: ``(x, y)`` of the crop's top-left pixel in the photo.

    Returns:
        The measured widths, in photo pixels.
    """
    ys, xs = np.nonzero(skeleton)
    if len(ys) == 0:
        return PhotoWidths(np.zeros(0), np.zeros(0, dtype=np.int32), 0)
    components = labels[ys, xs]
    candidates = np.flatnonzero(_away_from_junctions(skeleton, xs, ys, distance))
    if len(candidates) == 0:  # a tangle of junctions: measure it all rather than nothing
        candidates = np.arange(len(ys))
    if len(candidates) > MAX_PROFILES:
        candidates = candidates[np.linspace(0, len(candidates) - 1, MAX_PROFILES).astype(int)]
    normals = _skeleton_normals(xs, ys, components, candidates)
    xs, ys, components = xs[candidates], ys[candidates], components[candidates]
    band_half = np.maximum(distance[ys, xs].astype(np.float64) - 0.5, 0.5)
    search = band_half + SEARCH_MARGIN_PX
    # Finer steps than a 16th of the band buy no precision on the wide line of a large photo.
    step = float(np.clip(np.median(band_half) / 16, PROFILE_STEP_PX, MAX_PROFILE_STEP_PX))
    reach = float(search.max() + FLANK_GAP_PX + WALL_SPAN_PX)
    offsets = np.arange(-math.ceil(reach / step), math.ceil(reach / step) + 1) * step
    centres = np.stack([xs + origin[0], ys + origin[1]], axis=1).astype(np.float64)
    profiles = _sample_profiles(image, centres, normals, offsets)
    dips = _read_dips(profiles, offsets, search)
    widths = _widths(dips, components)
    ok = dips["ok"]
    if not ok.any():
        return PhotoWidths(np.zeros(0), np.zeros(0, dtype=np.int32), len(candidates))
    measured = widths[ok]
    _, width_max = summarise_widths(measured)
    index = int(np.flatnonzero(ok)[np.argmin(np.abs(measured - width_max))])
    return PhotoWidths(measured, components[ok], len(candidates), _example(index, centres, offsets, profiles, dips, widths))


def _example(index: int, centres: np.ndarray, offsets: np.ndarray, profiles: np.ndarray, dips: dict,
             widths: np.ndarray) -> WidthProfile:
    """Profile ``index`` as a :class:`WidthProfile`: the dip and the wall samples on either side."""
    left, right = float(dips["left"][index]), float(dips["right"][index])
    reach = FLANK_GAP_PX + WALL_SPAN_PX + 1.0
    keep = (offsets >= left - reach) & (offsets <= right + reach) & np.isfinite(profiles[index])
    kept = offsets[keep]
    wall = dips["wall_left"][index] + dips["wall_slope"][index] * (kept[[0, -1]] - dips["wall_left_at"][index])
    return WidthProfile(
        x_px=float(centres[index, 0]), y_px=float(centres[index, 1]), offsets_px=kept, samples=profiles[index][keep],
        wall=(float(wall[0]), float(wall[1])), depth=float(dips["depth"][index]), edges_px=(left, right),
        width_px=float(widths[index]), method="darkness" if dips["by_darkness"][index] else "half-depth",
    )


# -- geometry -------------------------------------------------------------------------------------
def _skeleton_normals(xs: np.ndarray, ys: np.ndarray, components: np.ndarray, at: np.ndarray,
                      neighbours: int = 9) -> np.ndarray:
    """Unit normals ``(len(at), 2)`` (x, y) to the local skeleton direction at skeleton pixels ``at``
    (indices into ``xs``, ``ys``).

    The direction is the principal axis of the ``neighbours`` nearest skeleton pixels of the same
    component (within 6 px): about ±4 px of skeleton, enough to smooth the pixel steps of a
    digital line, short enough to follow a bending crack.
    """
    from scipy.spatial import cKDTree

    points = np.stack([xs, ys], axis=1).astype(np.float64)
    k = min(neighbours, len(points))
    distances, index = cKDTree(points).query(points[at], k=k, distance_upper_bound=6.0)
    distances, index = distances.reshape(len(at), k), index.reshape(len(at), k)
    valid = np.isfinite(distances)
    index = np.where(valid, index, 0)
    valid &= components[index] == components[at][:, None]
    weight = valid.astype(np.float64)
    count = np.maximum(weight.sum(axis=1), 1.0)
    offsets = points[index] - points[at][:, None, :]
    mean = (offsets * weight[..., None]).sum(axis=1) / count[:, None]
    centred = (offsets - mean[:, None, :]) * weight[..., None]
    cxx = (centred[..., 0] ** 2).sum(axis=1)
    cyy = (centred[..., 1] ** 2).sum(axis=1)
    cxy = (centred[..., 0] * centred[..., 1]).sum(axis=1)
    angle = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)  # direction along the skeleton
    return np.stack([-np.sin(angle), np.cos(angle)], axis=1)


def _away_from_junctions(skeleton: np.ndarray, xs: np.ndarray, ys: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Which skeleton pixels lie farther from every junction (a pixel with 3 or more skeleton
    neighbours) than the junction's band half-width plus :data:`SEARCH_MARGIN_PX`: across a
    junction the dark region is the meeting of two cracks, not one crack's width."""
    from scipy.spatial import cKDTree

    padded = np.pad(skeleton, 1)
    neighbours = sum(padded[1 + dy + ys, 1 + dx + xs].astype(np.int8)
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    junctions = np.flatnonzero(neighbours >= 3)
    if len(junctions) == 0:
        return np.ones(len(xs), dtype=bool)
    jx, jy = xs[junctions], ys[junctions]
    reach = distance[jy, jx].astype(np.float64) + SEARCH_MARGIN_PX
    nearest_distance, nearest = cKDTree(np.stack([jx, jy], axis=1)).query(np.stack([xs, ys], axis=1), k=1)
    beyond: np.ndarray = nearest_distance > reach[nearest]
    return beyond


def _sample_profiles(image: np.ndarray, centres: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Brightness ``(N, T)`` float32 along each normal, averaged over :data:`PARALLEL_OFFSETS_PX`
    lines along the crack; NaN where a sample falls outside the photo."""
    import cv2

    height, width = image.shape[:2]
    reach = float(np.abs(offsets).max()) + max(abs(v) for v in PARALLEL_OFFSETS_PX) + 2
    x0 = max(int(math.floor(centres[:, 0].min() - reach)), 0)
    y0 = max(int(math.floor(centres[:, 1].min() - reach)), 0)
    x1 = min(int(math.ceil(centres[:, 0].max() + reach)) + 1, width)
    y1 = min(int(math.ceil(centres[:, 1].max() + reach)) + 1, height)
    window = image[y0:y1, x0:x1]
    grey = (cv2.cvtColor(window, cv2.COLOR_RGB2GRAY) if window.ndim == 3 else window).astype(np.float32)
    tangents = np.stack([normals[:, 1], -normals[:, 0]], axis=1)
    along = np.asarray(PARALLEL_OFFSETS_PX)
    # (N, S, T) sample positions in the window's coordinates: a start per line plus a step per
    # sample, added in float64 and cast to float32 straight into the maps.
    start_x = centres[:, 0, None, None] - x0 + along[None, :, None] * tangents[:, 0, None, None]
    start_y = centres[:, 1, None, None] - y0 + along[None, :, None] * tangents[:, 1, None, None]
    step_x, step_y = offsets[None, None, :] * normals[:, 0, None, None], offsets[None, None, :] * normals[:, 1, None, None]
    shape = (len(centres), len(along), len(offsets))
    # cv2.remap takes maps of at most 32767 rows or columns: lay the samples out in rows of 4096.
    total = math.prod(shape)
    columns = 4096
    rows = -(-total // columns)
    map_x = np.empty(rows * columns, dtype=np.float32)
    map_y = np.empty(rows * columns, dtype=np.float32)
    map_x[total:] = map_y[total:] = -1e6
    np.add(start_x, step_x, out=map_x[:total].reshape(shape), casting="unsafe")
    np.add(start_y, step_y, out=map_y[:total].reshape(shape), casting="unsafe")
    sampled = cv2.remap(grey, map_x.reshape(rows, columns), map_y.reshape(rows, columns), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan")).ravel()[:total].reshape(shape)
    # A sample off the window is NaN. Positions run monotonically along each line (rounding is
    # monotonic), so a line whose two ends lie on the window lies on it whole: only the others
    # are checked sample by sample.
    high_x, high_y = grey.shape[1] - 1, grey.shape[0] - 1
    ends_x, ends_y = start_x + step_x[:, :, [0, -1]], start_y + step_y[:, :, [0, -1]]
    off = ((ends_x < 0) | (ends_y < 0) | (ends_x > high_x) | (ends_y > high_y)).any(axis=2)
    if off.any():
        n, s = np.nonzero(off)
        px, py = start_x[n, s] + step_x[n, 0], start_y[n, s] + step_y[n, 0]
        lines = sampled[n, s]
        lines[(px < 0) | (py < 0) | (px > high_x) | (py > high_y)] = np.nan
        sampled[n, s] = lines
    means: np.ndarray = sampled.mean(axis=1)
    return means


# -- reading the dips -----------------------------------------------------------------------------
def _smooth(profiles: np.ndarray, sigma_samples: float) -> np.ndarray:
    import cv2

    radius = max(1, int(math.ceil(3 * sigma_samples)))
    kernel = cv2.getGaussianKernel(2 * radius + 1, sigma_samples).astype(np.float32)
    smoothed: np.ndarray = cv2.filter2D(profiles.astype(np.float32, copy=False), -1, kernel.T,
                                        borderType=cv2.BORDER_REPLICATE)
    return smoothed


def _read_dips(profiles: np.ndarray, offsets: np.ndarray, search: np.ndarray) -> dict:
    """Wall level, dip centre and depth, half-depth crossings and darkness area of each profile.

    Two passes: the first takes the wall just beyond the search window (outside the mask's band)
    to find the dip; the second takes it just beyond the dip's half-depth crossings, so a shallow
    shoulder beside the crack (a cast shadow, a soiled edge) counts as wall, not as crack.
    """
    first = _read_dip(profiles, offsets, search, (-search, search), slide=True)
    second = _read_dip(profiles, offsets, search, (first["left"] - FLANK_GAP_PX, first["right"] + FLANK_GAP_PX))
    second["ok"] &= first["ok"]
    return second


def _flank(values: np.ndarray, first: np.ndarray, count: int) -> np.ndarray:
    """``(N, count)`` samples of each row from index ``first`` on; NaN beyond the row's ends."""
    index = first[:, None] + np.arange(count)[None, :]
    inside = (index >= 0) & (index < values.shape[1])
    gathered = np.take_along_axis(values, np.clip(index, 0, values.shape[1] - 1), axis=1)
    return np.where(inside, gathered, np.nan)


def _read_dip(profiles: np.ndarray, offsets: np.ndarray, search: np.ndarray, inner: tuple,
              slide: bool = False) -> dict:
    """One pass of :func:`_read_dips`: the wall is read on :data:`WALL_SPAN_PX` of profile on each
    side beyond ``inner`` = ``(left end, right start)``, ``(N,)`` offsets each. With ``slide``, a
    side that runs off the photo (a band along the photo's edge) is read on its last samples on it."""
    n, t_count = profiles.shape
    rows = np.arange(n)
    step = float(offsets[1] - offsets[0])
    at = offsets[None, :]
    count = max(MIN_WALL_SAMPLES, int(round(WALL_SPAN_PX / step)))
    left_first = np.floor((inner[0] - offsets[0]) / step).astype(int) - count + 1
    right_first = np.ceil((inner[1] - offsets[0]) / step).astype(int)
    if slide:
        on_photo = np.isfinite(profiles)
        first_on = np.argmax(on_photo, axis=1)
        last_on = t_count - 1 - np.argmax(on_photo[:, ::-1], axis=1)
        left_first = np.maximum(left_first, first_on)
        right_first = np.minimum(right_first, last_on - count + 1)
    left_values, right_values = _flank(profiles, left_first, count), _flank(profiles, right_first, count)
    # A flank off the photo: NaN, not measured.
    wall_left, wall_right = nanmedian(left_values, axis=1), nanmedian(right_values, axis=1)
    left_at = offsets[0] + (left_first + (count - 1) / 2) * step
    right_at = offsets[0] + (right_first + (count - 1) / 2) * step
    with np.errstate(all="ignore"):  # both flanks in one place (a profile mostly off the photo): NaN, not measured
        slope = (wall_right - wall_left) / (right_at - left_at)
    wall = np.subtract(at, left_at[:, None])                          # wall_left + slope * (at - left_at)
    np.multiply(wall, slope[:, None], out=wall)
    np.add(wall, wall_left[:, None], out=wall)
    darkness = wall - profiles                                        # (N, T), positive in the dip
    flank_darkness = np.concatenate([_flank(darkness, left_first, count), _flank(darkness, right_first, count)], axis=1)
    noise = 1.4826 * nanmedian(np.abs(flank_darkness), axis=1)
    wall_samples = np.minimum(np.isfinite(left_values).sum(axis=1), np.isfinite(right_values).sum(axis=1))
    # Near the photo's edge a profile may run off it: measured if its dip and some wall on each side are on it.
    index = np.arange(t_count)[None, :]
    window = (index >= (left_first + count)[:, None]) & (index < right_first[:, None])
    # NaN (off the photo) as 0; an infinite wall stays infinite in float32, as nan_to_num's largest float64 does.
    darkness32 = darkness.astype(np.float32)
    darkness32[np.isnan(darkness32)] = 0.0
    smooth = _smooth(darkness32, SMOOTHING_PX / step)
    centre = np.argmax(np.where(np.abs(at) <= search[:, None], smooth, -np.inf), axis=1)
    depth = smooth[rows, centre]
    wall_centre = wall[rows, centre]
    finite = ((np.isfinite(profiles) | ~window).all(axis=1) & (wall_samples >= MIN_WALL_SAMPLES)
              & np.isfinite(wall_centre) & np.isfinite(noise))

    # Half-depth crossings: the last sample below half depth left of the centre, the first right of it.
    half = depth / 2
    below = smooth <= half[:, None]
    before, after = below & (index < centre[:, None]), below & (index > centre[:, None])
    left_i = np.where(before.any(axis=1), t_count - 1 - np.argmax(before[:, ::-1], axis=1), -1)
    right_i = np.where(after.any(axis=1), np.argmax(after, axis=1), t_count)
    found = (left_i >= 0) & (right_i < t_count)
    li, ri = np.clip(left_i, 0, t_count - 2), np.clip(right_i, 1, t_count - 1)
    with np.errstate(all="ignore"):
        frac_l = (half - smooth[rows, li]) / (smooth[rows, li + 1] - smooth[rows, li])
        frac_r = (smooth[rows, ri - 1] - half) / (smooth[rows, ri - 1] - smooth[rows, ri])
    left = offsets[li] + np.clip(np.nan_to_num(frac_l), 0, 1) * step
    right = offsets[ri - 1] + np.clip(np.nan_to_num(frac_r), 0, 1) * step
    half_depth_width = right - left

    # Darkness area over the dip and its blurred shoulders, up to the wall samples.
    inside_window = np.where(window, darkness, 0.0)
    inside_window[np.isnan(inside_window)] = 0.0                      # np.nansum's summands
    area = inside_window.sum(axis=1) * step
    with np.errstate(all="ignore"):
        relative_depth = depth / wall_centre
        relative_area = area / wall_centre
    ok = (finite & found & (depth > MIN_DEPTH_NOISE_RATIO * noise) & (relative_depth > MIN_RELATIVE_DEPTH)
          & (relative_area > 0) & (half_depth_width > 0))
    return {"ok": ok, "depth": depth, "relative_depth": relative_depth, "relative_area": relative_area,
            "half_depth_width": half_depth_width, "left": left, "right": right,
            "wall_left": wall_left, "wall_slope": slope, "wall_left_at": left_at,
            "by_darkness": np.zeros(n, dtype=bool)}


def _widths(dips: dict, components: np.ndarray) -> np.ndarray:
    """Each profile's width: darkness area over the component's full darkness, or the half-depth
    width where the profile's own dip reaches that darkness (see the module docstring)."""
    ok, relative_depth, half_depth_width = dips["ok"], dips["relative_depth"], dips["half_depth_width"]
    widths = np.full(len(ok), np.nan)
    by_darkness = dips["by_darkness"]
    for k in np.unique(components[ok]):
        own = ok & (components == k)
        resolved = own & (half_depth_width >= RESOLVED_WIDTH_PX)
        if resolved.sum() >= max(MIN_RESOLVED_PROFILES, MIN_RESOLVED_SHARE * own.sum()):
            full = float(np.median(relative_depth[resolved]))
        else:
            full, resolved = max(float(np.percentile(relative_depth[own], 90)), TYPICAL_DEPTH), own & False
        widths[resolved] = half_depth_width[resolved]
        thin = own & ~resolved
        widths[thin] = dips["relative_area"][thin] / full
        by_darkness[thin] = True
    return widths
