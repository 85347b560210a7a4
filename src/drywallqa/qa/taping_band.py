"""Taping figures on the joint, not the box: a band refined from the photo inside each predicted component.

The model learned taping areas from box labels, so around a diagonal or faint joint its mask is
often a broad, box-like region of wall, and a band width measured on it measures the box. The
photo shows where the joint runs. Inside each predicted component (its bounding box), this
module finds the joint's straight lines and draws the band each one covers; the QA figures of a
taping area (band width, covered length) are then measured on that band, while the predicted
mask stays the mask (:func:`measure_on_band`).

For each component of at least ``min_component_area_px`` pixels:

1. Grey crop of the component's box plus a margin; padding and cutouts filled with the wall
   around them (:func:`drywallqa.ridges.void_mask`, :func:`~drywallqa.ridges.fill_void`).
2. Ridge responses (:func:`drywallqa.ridges.ridge_response`) for both kinds of joint: thin dark
   lines (a bare seam between two boards) and bright bands (joint compound over the tape); the
   scales of 6 px and more on reduced copies (``reduced_sigma``).
3. The strongest straight line of each kind through the component: a Radon transform of the
   response inside the component (grown a little, never past its box, away from the frame and
   the padding): coarse angles on a reduced copy, then fine angles at full size. Joints are
   straight; a minimal path (the ridge pseudo-masks' tracing) assumes a box whose long axis
   spans the structure, which a blob or a T of bands does not.
4. The profile across the line: the median, along the line's length inside the component, of the
   photo sampled on the line's normals. A *seam* is darker than both of its shoulders; a
   *compound band* rises above the wall on both sides, and its edges are the steepest points of
   the descent on each side (the wall level, lighting and tape marks do not move them). Contrast
   is the smaller of the two sides, so neither the edge of a board against a dark background nor
   a band whose far side is out of frame counts as a joint (one side only: the mask stands).
5. The kind with the larger contrast wins when it reaches ``min_contrast``. A bare seam shows
   only its gap; its taping area is the band the tape will cover, centred on it: ``tape_width_mm``
   wide when the scale is known, otherwise ``seam_band_share`` of the photo's short side. A
   compound band is as wide as its measured edges, and is no band of the component's own when
   that is wider than the box across it.
6. More lines of the same kind (a T or a cross of joints in one component) while their contrast
   reaches ``next_line_share`` of the first's, each searched outside the bands already drawn.

Each band is clipped to its component's box. A component without a line keeps its predicted
pixels, unless another component of the mask has a line (then it is a blob beside the joint, and
is left out of the band). Photos larger than ``work_side`` pixels are refined on a reduced copy
and the bands drawn at full size.

Parameters were chosen on the sample-data walls of seeds 8-15 (the quickstart uses seed 0) and
checked for sanity on a subset of the real ``drywall-join/valid`` photos; docs/qa-validation-taping.md
(``scripts/taping_band_validation.py``) measures them on the quickstart's walls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from drywallqa.errors import ConfigError
from drywallqa.qa.figures import QAFigures, measure_mask
from drywallqa.qa.joint_lines import (
    JointLine,
    across_profile,
    along_inside,
    compound_edges,
    draw_band,
    strongest_line,
)

#: Paper joint tape is 52 mm (2 1/16 in) wide: the taping area of a bare seam.
TAPE_WIDTH_MM = 52.0
#: Without a scale, a seam's band is this share of the photo's short side: the middle of the 4-7 %
#: that 52 mm tape covers in a photo of a board, as the sample-data generator draws it (the real
#: export's boxes around straight joints: docs/qa-validation-taping.md).
SEAM_BAND_SHARE = 0.055


@dataclass(frozen=True)
class TapingBandParams:
    """Parameters of :func:`refine_taping_band` (see the module docstring).

    Attributes:
        seam_sigmas: Ridge filter scales for dark seams, in pixels of the working image.
        compound_sigmas: Ridge filter scales for bright compound bands.
        min_contrast: Least contrast of a joint against the wall on both sides, grey ``[0, 1]``.
        next_line_share: A further line in a component needs this share of the first's contrast.
        max_lines: Most lines per component.
        min_line_share: A line must run at least this share of its component box's long side
            (a further line: of the first line's length) inside the component.
        seam_band_share: A seam's band width as a share of the photo's short side, without a scale.
        tape_width_mm: A seam's band width when the scale is known.
        grow_share: The component is grown by this share of a seam band's width for the line
            search (a seam on the mask's edge is still found), never past its box.
        border_share: Responses this share of the short side from the frame are ignored (thin
            padding strips read as lines).
        margin_share: The crop around a box, as a share of the box's short side (the wall beside a
            band must be in the profile).
        smooth_px: Gaussian smoothing of a compound profile before its edges are found (flattens
            the tape's thin edge marks).
        work_side: Photos whose long side is larger are refined on a copy reduced to this side.
        reduced_sigma: Ridge scales of at least twice this, and the fill of the padding, are
            filtered on a copy reduced to keep them this many pixels
            (:func:`drywallqa.ridges.ridge_response`, :func:`~drywallqa.ridges.fill_void`): the
            large scales at a fraction of their cost; 0 filters every scale at full size.
    """

    seam_sigmas: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    compound_sigmas: tuple[float, ...] = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
    min_contrast: float = 6.0 / 255.0
    next_line_share: float = 0.3
    max_lines: int = 3
    min_line_share: float = 0.3
    seam_band_share: float = SEAM_BAND_SHARE
    tape_width_mm: float = TAPE_WIDTH_MM
    grow_share: float = 0.1
    border_share: float = 0.01
    margin_share: float = 0.25
    smooth_px: float = 5.0
    work_side: int = 1024
    reduced_sigma: float = 3.0

    def __post_init__(self) -> None:
        for name in ("seam_sigmas", "compound_sigmas"):
            scales = tuple(float(s) for s in getattr(self, name))
            if not scales or min(scales) <= 0:
                raise ConfigError(f"{name} must be positive scales in pixels, got {getattr(self, name)!r}")
            object.__setattr__(self, name, scales)
        shares = ("next_line_share", "min_line_share", "seam_band_share", "border_share")
        for name in shares:
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("min_contrast", "tape_width_mm", "grow_share", "margin_share", "smooth_px", "reduced_sigma"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"{name} must be a number >= 0, got {getattr(self, name)!r}")
        if self.max_lines < 1 or self.work_side < 64:
            raise ConfigError(f"expected max_lines >= 1 and work_side >= 64, got {self.max_lines} and {self.work_side}")


@dataclass
class TapingBand:
    """The band refined inside a predicted taping-area mask.

    Attributes:
        mask: ``(H, W)`` bool band at the mask's size.
        lines: The joints found, one band each.
        refined: Components whose band was drawn from the photo.
        kept: Components kept as predicted (no joint visible and no other component refined).
        left_out: Components without a joint beside a refined one, left out of the band.
    """

    mask: np.ndarray
    lines: tuple[JointLine, ...] = ()
    refined: int = 0
    kept: int = 0
    left_out: int = 0

    def __repr__(self) -> str:
        kinds = ", ".join(f"{line.kind} {line.width_px:.1f} px" for line in self.lines) or "no joint line"
        return (
            f"TapingBand({self.mask.shape[1]}x{self.mask.shape[0]}, {int(self.mask.sum())} px; {kinds}; "
            f"{self.refined} refined, {self.kept} kept, {self.left_out} left out)"
        )


def refine_taping_band(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    mm_per_px: float | None = None,
    params: TapingBandParams | None = None,
    min_component_area_px: float = 10,
) -> TapingBand:
    """The taping band inside a predicted mask, refined from the photo (see the module docstring).

    Args:
        image: RGB ``uint8`` ``(H, W, 3)`` photo at the mask's size.
        mask: ``(H, W)`` bool predicted taping-area mask.
        mm_per_px: Millimetres per pixel of ``image``; a seam's band is then ``tape_width_mm`` wide.
        params: Parameters; the defaults when None.
        min_component_area_px: Smaller components are noise: never refined nor kept.

    Returns:
        The band, its joint lines and what happened to each component.

    Raises:
        ConfigError: If the image is not RGB ``uint8`` at the mask's size.

    Example:
        >>> image = np.full((200, 200, 3), 150, np.uint8); image[:, 99:101] = 60   # a vertical seam
        >>> box = np.zeros((200, 200), bool); box[:, 40:160] = True                 # a broad mask
        >>> band = refine_taping_band(image, box)
        >>> band.lines[0].kind, round(band.lines[0].width_px, 1), int(band.mask[100].sum())
        ('seam', 11.0, 11)
    """
    import cv2

    from drywallqa.ridges import component_stats, fill_void, void_mask

    params = params or TapingBandParams()
    mask = np.asarray(mask).astype(bool, copy=False)
    image = np.asarray(image)
    if mask.ndim != 2:
        raise ConfigError(f"mask must have shape (H, W), got {mask.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[:2] != mask.shape:
        raise ConfigError(
            f"image must be RGB uint8 of shape {(*mask.shape, 3)} (the mask's size), got {image.shape} {image.dtype}"
        )
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        raise ConfigError(f"mm_per_px must be a positive number, got {mm_per_px!r}")
    height, width = mask.shape
    band = TapingBand(np.zeros((height, width), dtype=bool))
    if not mask.any():
        return band

    factor = min(1.0, params.work_side / max(height, width))  # working pixels per photo pixel
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        work_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        work_mask = cv2.resize(mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    else:
        work_image, work_mask = image, mask
    gray = cv2.cvtColor(work_image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    void = void_mask(work_image, grey=True)
    if void.any() and not void.all():
        gray = fill_void(gray, void, reduced_sigma=params.reduced_sigma)
    seam_share_half = params.seam_band_share * min(gray.shape) / 2.0
    seam_half = seam_share_half if mm_per_px is None else params.tape_width_mm / mm_per_px * factor / 2.0

    n_labels, labels = cv2.connectedComponents(work_mask.view(np.uint8), connectivity=8)
    stats = np.stack(component_stats(labels, n_labels), axis=1)
    unlined = []
    for k in range(1, n_labels):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area < min_component_area_px * factor**2:
            continue
        lines = _component_lines(gray, void, labels == k, (x, y, w, h), seam_share_half, seam_half, params)
        # The box in photo pixels: every band stays inside its component's box.
        x0, y0 = math.floor(x / factor), math.floor(y / factor)
        x1, y1 = min(width, math.ceil((x + w) / factor)), min(height, math.ceil((y + h) / factor))
        if not lines:
            own = (labels[y : y + h, x : x + w] == k).view(np.uint8)
            own = cv2.resize(own, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST).astype(bool)
            unlined.append(((y0, y1, x0, x1), own & mask[y0:y1, x0:x1]))
            continue
        band.refined += 1
        for line in lines:
            line = _to_photo(line, factor)
            band.lines += (line,)
            band.mask[y0:y1, x0:x1] |= draw_band(line, (y0, y1, x0, x1))
    for (y0, y1, x0, x1), own in unlined:
        if band.refined:
            band.left_out += 1
        else:
            band.kept += 1
            band.mask[y0:y1, x0:x1] |= own
    return band


def measure_on_band(
    figures: QAFigures,
    mask: np.ndarray,
    image: np.ndarray,
    *,
    scale: float = 1.0,
    min_component_area_px: int = 10,
    params: TapingBandParams | None = None,
) -> QAFigures:
    """A taping mask's figures with its band width and lengths measured on the refined band.

    The mask's own widths move to ``mask_width_max_px`` / ``mask_width_mean_px``; the area,
    component count and confidence stay the mask's (it is the same mask).

    Args:
        figures: The mask's ``"joint"`` figures (:func:`~drywallqa.qa.figures.measure_mask`).
        mask: ``(H, W)`` bool mask they were measured on.
        image: RGB ``uint8`` photo at the mask's size.
        scale: Image-file pixels per mask pixel, as for ``measure_mask``.
        min_component_area_px: Components smaller than this (file pixels) are noise.
        params: Refinement parameters; the defaults when None.

    Returns:
        ``figures``, updated in place.
    """
    mm_per_px = None if figures.mm_per_px is None else figures.mm_per_px * scale  # mm per mask pixel
    refined = refine_taping_band(
        image, mask, mm_per_px=mm_per_px, params=params, min_component_area_px=min_component_area_px / scale**2
    )
    on_band = measure_mask(refined.mask, "joint", min_component_area_px=min_component_area_px, scale=scale)
    figures.mask_width_max_px, figures.mask_width_mean_px = figures.width_max_px, figures.width_mean_px
    if on_band.components:
        figures.length_px, figures.longest_px = on_band.length_px, on_band.longest_px
        figures.width_max_px, figures.width_mean_px = on_band.width_max_px, on_band.width_mean_px
        figures.component_lengths_px = on_band.component_lengths_px
        figures.width_source = "photo"
    return figures


# -- one component --------------------------------------------------------------------------------
def _component_lines(
    gray: np.ndarray,
    void: np.ndarray,
    component: np.ndarray,
    box: tuple[int, int, int, int],
    seam_share_half: float,
    seam_half: float,
    params: TapingBandParams,
) -> list[JointLine]:
    """The joint lines of one component, in working-image coordinates."""
    import cv2

    from drywallqa.ridges import ridge_response

    height, width = gray.shape
    x, y, w, h = box
    pad = max(8, int(params.margin_share * min(w, h)))
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(width, x + w + pad), min(height, y + h + pad)
    crop = gray[y0:y1, x0:x1]
    in_box = np.zeros(crop.shape, dtype=bool)
    in_box[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = True
    grow = max(2, round(params.grow_share * 2 * seam_share_half))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    region = cv2.dilate(component[y0:y1, x0:x1].view(np.uint8), disc)
    border = max(4, round(params.border_share * min(height, width)))
    rows, cols = np.arange(y0, y1)[:, None], np.arange(x0, x1)[None, :]
    away = (rows >= border) & (rows < height - border) & (cols >= border) & (cols < width - border)
    remaining = (region.astype(bool) & in_box & away & ~void[y0:y1, x0:x1]).astype(np.float32)
    total = float(remaining.sum())
    responses = {
        "seam": ridge_response(crop, params.seam_sigmas, "dark", reduced_sigma=params.reduced_sigma),
        "compound": ridge_response(crop, params.compound_sigmas, "bright", reduced_sigma=params.reduced_sigma),
    }
    box_y, box_x = np.nonzero(in_box)
    origin = np.array([x0, y0], dtype=np.float64)
    lines: list[JointLine] = []
    first_length = None
    while len(lines) < params.max_lines and remaining.sum() >= 0.1 * total > 0:
        candidates = []
        for kind, response in responses.items():
            if lines and kind != lines[0].kind:
                continue  # one wall, one kind: a T of compound bands, not a band and a seam
            point, direction = strongest_line(response * remaining)
            along = along_inside(point, direction, remaining)
            needed = params.min_line_share * (first_length if first_length else max(w, h))
            if along.size == 0 or along.size < needed:
                continue
            normal = np.array([-direction[1], direction[0]])
            box_across = (box_x - point[0]) * normal[0] + (box_y - point[1]) * normal[1]
            reach = float(np.abs(box_across).max())
            contrast, offsets = _measure_across(
                kind, gray, point + origin, direction, along, reach, seam_share_half, seam_half, params
            )
            if kind == "compound" and offsets[1] - offsets[0] > box_across.max() - box_across.min():
                continue  # edges beyond the box on both sides: no band of this component's own
            candidates.append((contrast, kind, point, direction, along.size, offsets))
        candidates = [c for c in candidates if c[0] >= params.min_contrast]
        if not candidates:
            break
        contrast, kind, point, direction, length, offsets = max(candidates, key=lambda c: c[0])
        if lines and contrast < params.next_line_share * lines[0].contrast:
            break
        line = JointLine(kind, tuple(point + origin), tuple(direction), offsets, contrast)
        lines.append(line)
        first_length = first_length or length
        drawn = draw_band(replace(line, point=tuple(point)), (0, crop.shape[0], 0, crop.shape[1]))
        remaining *= ~cv2.dilate(drawn.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return lines


def _measure_across(
    kind: str,
    gray: np.ndarray,
    point: np.ndarray,
    direction: np.ndarray,
    along: np.ndarray,
    reach: float,
    seam_share_half: float,
    seam_half: float,
    params: TapingBandParams,
) -> tuple[float, tuple[float, float]]:
    """``(contrast, (low, high) band offsets)`` of a candidate line, from its across-profile."""
    if kind == "seam":
        span = math.ceil(seam_share_half) + 2
        across = np.arange(-span, span + 1, dtype=np.float64)
        profile, valid = across_profile(gray, point, direction, along, across)
        distance = np.abs(across)
        core = valid & (distance <= max(1.5, 0.1 * seam_share_half))
        if not core.any():
            return 0.0, (-seam_half, seam_half)
        gap = float(profile[core].min())
        # Shoulders: the wall either side of the gap; a board's edge has a shoulder on one side only.
        shoulder = (distance >= max(2.5, 0.25 * seam_share_half)) & (distance <= max(4.0, 0.75 * seam_share_half))
        sides = [valid & shoulder & (np.sign(across) == s) for s in (-1, 1)]
        contrast = min(float(np.median(profile[s])) if s.any() else gap for s in sides) - gap
        return contrast, (-seam_half, seam_half)
    span = math.ceil(reach) + 6
    across = np.arange(-span, span + 1, dtype=np.float64)
    profile, valid = across_profile(gray, point, direction, along, across)
    low, high, contrast = compound_edges(profile, valid, params.smooth_px, span)
    return contrast, (float(across[0] + low), float(across[0] + high))


# -- working copy to photo ---------------------------------------------------------------------------
def _to_photo(line: JointLine, factor: float) -> JointLine:
    """A line found on the working copy, in the photo's pixels (pixel centres map as
    ``x_photo = (x_work + 0.5) / factor - 0.5``)."""
    if factor == 1.0:
        return line
    x, y = line.point
    low, high = line.offsets
    point = ((x + 0.5) / factor - 0.5, (y + 0.5) / factor - 0.5)
    return replace(line, point=point, offsets=(low / factor, high / factor))


