"""QA figures measured on a predicted mask: area, components, length and width.

Which figures a mask gets depends on its *figure set*, chosen from the prompt's class by the
thresholds file (see :mod:`drywallqa.qa.rules`):

- ``"crack"``: thin curves. Length runs along the skeleton
  (:func:`skimage.morphology.skeletonize`): a horizontal or vertical step between skeleton pixels
  counts 1 pixel, a diagonal step √2, and each skeleton end is extended to the mask's edge by its
  distance to the edge (so a straight bar of length ``L`` measures ``L``). The local width at a
  skeleton pixel is ``2·d − 1`` where ``d`` is the Euclidean distance from the pixel's centre to
  the centre of the nearest background pixel: ``d − ½`` is the distance to the mask's edge, and
  twice that is the width through the centre (exact for odd widths, within one pixel otherwise).
  Width max and mean are taken over the skeleton pixels. These are the *mask's* widths
  (``mask_width_*``); given the photo (``image``), the crack's ``width_*`` figures are measured on
  it instead, across the dark line (:mod:`drywallqa.qa.crack_width`), because a model's mask is a
  band several pixels wider than the crack. ``width_source`` says which: ``"photo"`` or ``"mask"``.
- ``"joint"``: taping areas, bands tens of pixels wide, where a skeleton grows spurs at the band's
  corners that would inflate a skeleton length. Each component's band width is the median of the
  local widths along its skeleton (spurs are a minority of skeleton pixels, so the median ignores
  them), and its covered length is its area divided by that width: the length of a straight band,
  and the summed arm lengths of a T or cross of bands. Width max is the widest local width.
  Given the photo, they are measured on the band refined from it inside the mask
  (:mod:`drywallqa.qa.taping_band`, ``width_source`` ``"photo"``) where a band is found, and the
  mask's own widths are kept as ``mask_width_*``; otherwise they are the mask's.
- ``"area"``: any other class: covered area, component count and confidence only.

Outside the image counts as background, so a crack leaving the frame ends at the frame.
Components smaller than ``min_component_area_px`` pixels are model noise: they are left out of
the component count, lengths and widths (the covered area still counts every mask pixel).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from drywallqa.errors import ConfigError

FIGURE_SETS = ("crack", "joint", "area")
# Figures measured in pixels that get a millimetre twin when the image scale is known.
LENGTH_FIGURES = ("length", "longest", "width_max", "width_mean", "mask_width_max", "mask_width_mean")
#: Where a mask's ``width_*`` figures come from: across the dark line on the photo, or the mask's band.
WIDTH_SOURCES = ("photo", "mask")

#: Millimetres per pixel of photos of walls, from a close-up of a hairline crack (0.01) to a whole
#: wall in one frame (20): a scale outside it is warned about, as a likely typo or unit mix-up.
PLAUSIBLE_MM_PER_PX = (0.01, 20.0)
#: Scales refused outright: beyond them millimetre figures stop meaning anything (and, far enough,
#: stop being finite numbers).
MM_PER_PX_LIMITS = (1e-6, 1e6)


def check_mm_per_px(value: float | None, field: str = "mm_per_px") -> str | None:
    """The one check of an image scale, for every driver (flags, HTTP form fields, API arguments).

    Args:
        value: Millimetres per pixel, or None (scale unknown: figures in pixels only).
        field: How the user gave it, for the messages (``"--mm-per-px"``, ``"mm_per_px"``).

    Returns:
        A warning line when the value lies outside :data:`PLAUSIBLE_MM_PER_PX`, else None.

    Raises:
        ConfigError: If the value is not a positive finite number within :data:`MM_PER_PX_LIMITS`.
    """
    if value is None:
        return None
    low, high = MM_PER_PX_LIMITS
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{field} must be a positive number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{field} {value:g} is no photo's scale (millimetres per pixel between {low:g} and "
                          f"{high:g}); photos of walls have {PLAUSIBLE_MM_PER_PX[0]:g} to {PLAUSIBLE_MM_PER_PX[1]:g}")
    plausible_low, plausible_high = PLAUSIBLE_MM_PER_PX
    if not plausible_low <= value <= plausible_high:
        return (f"{field} {value:g} is outside the scale of photos of walls ({plausible_low:g} to {plausible_high:g} "
                "millimetres per pixel): check its unit; the mm figures and mm rules use it as given")
    return None



@dataclass
class QAFigures:
    """QA figures of one mask.

    Attributes:
        figure_set: ``"crack"``, ``"joint"`` or ``"area"`` (see the module docstring).
        area_percent: Mask pixels as a percentage of the image's pixels.
        area_px: Mask pixels.
        components: 8-connected components of at least ``min_component_area_px`` pixels.
        confidence: The model's confidence in ``[0, 1]``, or None when not given.
        length_px: Summed length of all components (crack: along the skeleton; joint: covered
            length); None for the ``"area"`` set.
        longest_px: Length of the longest component; 0 when there is none.
        width_max_px: Crack measured on the photo: the 95th percentile of the widths across the
            dark line; otherwise the widest local width of the mask. None when there is no
            component (or, on the photo, no dark line).
        width_mean_px: Crack measured on the photo: the 10 % trimmed mean of the widths across the
            dark line; crack from the mask: mean local width over all skeleton pixels; joint:
            area-weighted mean of the components' band widths. None as ``width_max_px``.
        mask_width_max_px: The mask's widest local width, whatever ``width_source``.
        mask_width_mean_px: The mask's mean width (crack: over skeleton pixels; joint: as above).
        width_source: ``"photo"`` or ``"mask"``: what ``width_*`` were measured on; None for the
            ``"area"`` set.
        mm_per_px: Image scale in millimetres per pixel, or None when unknown.
        component_lengths_px: Length of each component, longest first.
        width_profile: One measured profile across the crack, JSON-ready in the file's pixels
            (:meth:`~drywallqa.qa.crack_width.WidthProfile.to_dict`), for showing how the photo
            width was read; None unless measured on the photo.
    """

    figure_set: str
    area_percent: float
    area_px: int
    components: int
    confidence: float | None = None
    length_px: float | None = None
    longest_px: float | None = None
    width_max_px: float | None = None
    width_mean_px: float | None = None
    mask_width_max_px: float | None = None
    mask_width_mean_px: float | None = None
    width_source: str | None = None
    mm_per_px: float | None = None
    component_lengths_px: tuple[float, ...] = field(default=(), repr=False)
    width_profile: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.figure_set not in FIGURE_SETS:
            raise ConfigError(f"figure_set must be one of {', '.join(FIGURE_SETS)}, got {self.figure_set!r}")
        if self.width_source is not None and self.width_source not in WIDTH_SOURCES:
            raise ConfigError(f"width_source must be one of {', '.join(WIDTH_SOURCES)}, got {self.width_source!r}")
        if self.mm_per_px is not None and not (self.mm_per_px > 0 and math.isfinite(self.mm_per_px)):
            raise ConfigError(f"mm_per_px must be a positive number, got {self.mm_per_px!r}")

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Flat JSON-ready figures; ``*_mm`` twins of the lengths and widths when the scale is known.

        Figures that do not apply to the figure set are left out, so a CSV column is either a
        number or empty (``width_source`` is a word: ``photo`` or ``mask``).
        """
        out: dict[str, float | int | str | None] = {
            "area_percent": round(self.area_percent, 4),
            "area_px": self.area_px,
            "components": self.components,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
        }
        if self.figure_set == "area":
            return out
        for name in LENGTH_FIGURES:
            value = getattr(self, f"{name}_px")
            out[f"{name}_px"] = None if value is None else round(value, 2)
            if self.mm_per_px is not None:
                out[f"{name}_mm"] = None if value is None else round(value * self.mm_per_px, 3)
        out["width_source"] = self.width_source
        return out


def measure_mask(
    mask: np.ndarray,
    figure_set: str = "area",
    *,
    image: np.ndarray | None = None,
    mm_per_px: float | None = None,
    confidence: float | None = None,
    min_component_area_px: int = 10,
    scale: float = 1.0,
) -> QAFigures:
    """Measure the QA figures of one binary mask.

    Args:
        mask: ``(H, W)`` bool (or 0/1) mask at the image's size.
        figure_set: ``"crack"``, ``"joint"`` or ``"area"``.
        image: The photo the mask was predicted on, RGB ``uint8`` ``(H, W, 3)`` at the mask's size
            (as decoded, possibly reduced: see ``scale``). With it, crack widths are measured
            across the dark line on the photo (``width_source`` ``"photo"``); without it, they are
            the mask's band widths (``"mask"``). A ``"joint"`` mask's widths and lengths are
            measured on the band refined from it where one is found (the mask's own widths kept
            as ``mask_width_*``). The ``"area"`` set does not use it.
        mm_per_px: Millimetres per pixel of the image file; adds ``*_mm`` figures.
        confidence: The model's confidence, carried into the figures.
        min_component_area_px: Smaller components are noise and are not measured.
        scale: Image-file pixels per mask pixel, for a mask of a photo decoded reduced
            (:attr:`drywallqa.files.Photo.scale`): lengths and widths are multiplied by it and
            areas by its square, so pixel figures, pixel rules and ``mm_per_px`` all refer to the
            file's pixels.

    Returns:
        The figures.

    Raises:
        ConfigError: If an argument has the wrong shape or range (``image`` not at the mask's size).

    Example:
        >>> mask = np.zeros((20, 120), dtype=bool); mask[8:13, 10:110] = True   # 100 × 5 px bar
        >>> f = measure_mask(mask, "crack", mm_per_px=0.5)
        >>> round(f.longest_px), f.width_max_px, f.to_dict()["width_max_mm"], f.width_source  # length within 1 px
        (100, 5.0, 2.5, 'mask')
        >>> photo = np.full((20, 120, 3), 200, np.uint8); photo[9:12, 10:110] = 60   # the crack: 3 px
        >>> f = measure_mask(mask, "crack", image=photo)
        >>> round(f.width_max_px, 1), f.mask_width_max_px, f.width_source
        (3.0, 5.0, 'photo')
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConfigError(f"mask must have shape (H, W), got {mask.shape}")
    if figure_set not in FIGURE_SETS:
        raise ConfigError(f"figure_set must be one of {', '.join(FIGURE_SETS)}, got {figure_set!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    if image is not None:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != mask.shape:
            raise ConfigError(f"image must be RGB uint8 of the mask's size {mask.shape + (3,)}, "
                              f"got {image.dtype} {image.shape}")
    mask = mask.astype(bool, copy=False)
    area_px = int(np.count_nonzero(mask))
    cropped, origin = _crop_to_mask(mask)
    labels, n_components = _label_components(cropped, min_component_area_px / scale**2)
    figures = QAFigures(
        figure_set=figure_set, area_percent=100.0 * area_px / max(mask.size, 1), area_px=round(area_px * scale**2),
        components=n_components, confidence=None if confidence is None else float(confidence), mm_per_px=mm_per_px,
    )
    if figure_set == "area":
        return figures
    photo_widths = figure_set == "crack" and image is not None
    figures.width_source = "photo" if photo_widths else "mask"
    figures.length_px, figures.longest_px = 0.0, 0.0
    if n_components == 0:
        return figures
    skeleton, distance = _skeleton_and_distance(labels)
    measure = _measure_cracks if figure_set == "crack" else _measure_joints
    lengths, width_max, width_mean = measure(labels, n_components, skeleton, distance)
    lengths = lengths * scale
    figures.component_lengths_px = tuple(sorted((float(v) for v in lengths), reverse=True))
    figures.length_px = float(lengths.sum())
    figures.longest_px = float(lengths.max())
    figures.mask_width_max_px = float(width_max * scale)
    figures.mask_width_mean_px = float(width_mean * scale)
    if photo_widths and image is not None:
        from drywallqa.qa.crack_width import measure_photo_widths, summarise_widths

        measured = measure_photo_widths(image, labels, skeleton, distance, origin)
        mean, largest = summarise_widths(measured.widths_px)
        figures.width_mean_px = None if mean is None else mean * scale
        figures.width_max_px = None if largest is None else largest * scale
        figures.width_profile = None if measured.example is None else measured.example.to_dict(scale)
    else:
        figures.width_max_px, figures.width_mean_px = figures.mask_width_max_px, figures.mask_width_mean_px
    if image is not None and figure_set == "joint":
        # A lazy import: taping_band imports this module.
        from drywallqa.qa.taping_band import measure_on_band

        measure_on_band(figures, mask, image, scale=scale, min_component_area_px=min_component_area_px)
    return figures


# -- measurement ----------------------------------------------------------------------------------
def _crop_to_mask(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask cut to the bounding box of its pixels, and the box's top-left ``(x, y)``: every
    figure but the area share is the same on it (outside the image counts as background anyway),
    at a fraction of the cost for the few percent of a photo a crack covers."""
    import cv2

    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return (mask[y : y + h, x : x + w] if w and h else mask[:0, :0]), (x, y)


def _label_components(mask: np.ndarray, min_area: float) -> tuple[np.ndarray, int]:
    """8-connected labels ``1..K`` of the components with at least ``min_area`` pixels (0 elsewhere)."""
    import cv2

    if not mask.size:
        return np.zeros(mask.shape, dtype=np.int32), 0
    # Areas by bincount: OpenCV's WithStats variant costs ten times the labelling itself.
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.flatnonzero(np.bincount(labels.ravel(), minlength=n)[1:] >= max(math.ceil(min_area), 1)) + 1
    if len(keep) == n - 1:  # every component kept: the labels are 1..K already
        return labels, len(keep)
    relabel = np.zeros(n, dtype=np.int32)
    relabel[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    return relabel[labels], len(keep)


def _skeleton_and_distance(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton of the labelled mask and each mask pixel's distance to the nearest background pixel.

    Each component is thinned and measured on its own bounding box, padded with background (so that
    outside the image counts as background): the same result as on the whole mask, because
    8-connected components never touch, so no pixel's neighbourhood, nor its nearest non-component
    pixel, belongs to another component; but a few cracks across a photo cover far less than their
    common bounding box. Distances are filled in on mask pixels only.
    """
    import cv2
    from scipy.ndimage import find_objects
    from skimage.morphology import skeletonize

    skeleton = np.zeros(labels.shape, dtype=bool)
    distance = np.zeros(labels.shape, dtype=np.float32)
    for k, box in enumerate(find_objects(labels), start=1):
        if box is None:
            continue
        component = labels[box] == k
        padded = np.pad(component, 1).astype(np.uint8)
        skeleton[box] |= skeletonize(component)
        distance[box][component] = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1][component]
    return skeleton, distance


def _skeleton_step_lengths(skeleton: np.ndarray, labels: np.ndarray, n_components: int) -> np.ndarray:
    """Length of each component's skeleton: orthogonal steps count 1, diagonal steps √2.

    A diagonal step is skipped where an orthogonal pixel already joins its two ends (an L-shaped
    corner), so a corner counts 2, not 2 + √2.
    """
    s = skeleton
    lengths = np.zeros(n_components + 1)
    steps = (
        (s[:, :-1] & s[:, 1:], labels[:, :-1], 1.0),                                    # horizontal
        (s[:-1, :] & s[1:, :], labels[:-1, :], 1.0),                                    # vertical
        (s[:-1, :-1] & s[1:, 1:] & ~s[:-1, 1:] & ~s[1:, :-1], labels[:-1, :-1], math.sqrt(2)),  # ↘
        (s[:-1, 1:] & s[1:, :-1] & ~s[:-1, :-1] & ~s[1:, 1:], labels[:-1, 1:], math.sqrt(2)),   # ↙
    )
    for present, owner, step in steps:
        lengths += step * np.bincount(owner[present], minlength=n_components + 1)
    return lengths[1:]


def _skeleton_neighbours(skeleton: np.ndarray) -> np.ndarray:
    """Number of 8-connected skeleton neighbours of every pixel."""
    import cv2

    kernel = np.ones((3, 3), dtype=np.float32)
    kernel[1, 1] = 0
    # On uint8: the counts (0 to 8) are exact, without a float image to round.
    counts: np.ndarray = cv2.filter2D(skeleton.view(np.uint8), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return counts


def _measure_cracks(labels: np.ndarray, n_components: int, skeleton: np.ndarray,
                    distance: np.ndarray) -> tuple[np.ndarray, float, float]:
    lengths = _skeleton_step_lengths(skeleton, labels, n_components)
    # Extend each skeleton end to the mask's edge: distance to the edge is d - 1/2. An isolated
    # skeleton pixel (a blob) is an end in both directions.
    neighbours = _skeleton_neighbours(skeleton)
    ends = skeleton & (neighbours <= 1)
    end_weight = np.where(neighbours[ends] == 0, 2.0, 1.0)
    lengths += np.bincount(labels[ends], weights=end_weight * (distance[ends] - 0.5), minlength=n_components + 1)[1:]
    local_width = 2.0 * distance[skeleton] - 1.0
    return lengths, float(local_width.max()), float(local_width.mean())


def _measure_joints(labels: np.ndarray, n_components: int, skeleton: np.ndarray,
                    distance: np.ndarray) -> tuple[np.ndarray, float, float]:
    areas = np.bincount(labels.ravel(), minlength=n_components + 1)[1:].astype(float)
    skeleton_labels = labels[skeleton]
    local_width = 2.0 * distance[skeleton] - 1.0
    band_widths = np.array([
        float(np.median(local_width[skeleton_labels == k])) if np.any(skeleton_labels == k) else 1.0
        for k in range(1, n_components + 1)
    ])
    band_widths = np.maximum(band_widths, 1.0)
    lengths = areas / band_widths
    width_mean = float((band_widths * areas).sum() / areas.sum())
    return lengths, float(local_width.max()), width_mean
