"""Ridge filters and minimal paths for thin structures (cracks, taping joints) inside a box.

A crack or joint annotation's box is the tight box of a thin structure, so the structure runs
from one end of the box's long axis to the other. The method uses exactly that:

1. Crop the box plus a context ring, convert to grey ``[0, 1]``. Pure-black regions (Roboflow's
   cutout squares, the corners of rotated exports) and a thin rim around them are filled with
   the local mean of the wall around them (:func:`~drywallqa.ridges.fill_void`), so their
   edges are not mistaken for lines.
2. Multi-scale Hessian ridge response (Sato-like: scale-normalised principal curvature of the
   Gaussian-smoothed image, :func:`~drywallqa.ridges.ridge_responses`). Dark lines (cracks,
   seams) have a large positive curvature across them, bright bands (joint compound) a large
   negative one.
3. Minimal path (:func:`minimal_path`) through the cost ``1 - response / max`` from the first to
   the last row of the box's long axis: a connected curve that spans the box even where the
   line is faint, unlike thresholding, which breaks it into pieces and picks up texture.
4. For straight structures (joints) a robust, response-weighted line fit replaces the path.
5. The band width comes from the scales that respond along the path:
   ``width = width_scale * sigma + width_offset``. A bar of width ``w`` responds most at
   ``sigma ~ w / 2``, so ``width_scale=2, width_offset=1`` traces the visible line; the defaults
   are wider because they were fitted to annotated bands, which are drawn generously around
   the visible crack and rasterised inclusively (the offset covers that). The path is dilated
   to that width, inside the box.

Boxes whose short side is at most ``fill_below`` pixels are filled: at that size the structure
fills the box and the filters have no context.

Parameters were tuned on ``cracks/train`` (cracks) and on synthetic joints from
:func:`drywallqa.data.synthetic.generate_sample_data` (taping areas); never on a validation split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import cv2
import numpy as np

from drywallqa.pseudomask.base import PseudoMaskMethod, box_window
from drywallqa.ridges import fill_void, ridge_responses, void_mask

POLARITIES = ("dark", "bright", "auto")
@dataclass(frozen=True)
class RidgeParams:
    """Ridge-method parameters for one class.

    Attributes:
        sigmas: Filter scales in pixels (a line of width ``w`` responds most near ``w / 2``).
        polarity: ``"dark"`` lines, ``"bright"`` bands, or ``"auto"``: both are traced and the
            path with the stronger mean response wins.
        width_scale: Band width per unit of the responding scale (2 traces the visible line).
        width_offset: Band width added in pixels.
        straight: Replace the path by a robust straight-line fit (joints are straight).
        dark_sigmas: Scales for the dark polarity when it differs (``None``: ``sigmas``). For
            joints only thin seams are dark: at wide scales the wall beside a bright compound
            band reads as a dark valley.
        grey_voids: Also treat flat dark grey rectangles and border padding as void (see
            :func:`void_mask`); off for cracks, whose dark interiors can be flat.
    """

    sigmas: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
    polarity: str = "dark"
    width_scale: float = 4.0
    width_offset: float = 10.0
    straight: bool = False
    dark_sigmas: tuple[float, ...] | None = None
    grey_voids: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if self.dark_sigmas is not None:
            object.__setattr__(self, "dark_sigmas", tuple(float(s) for s in self.dark_sigmas))
        for scales in (self.sigmas, self.dark_sigmas or self.sigmas):
            if not scales or min(scales) <= 0:
                raise ValueError(f"sigmas must be positive scales in pixels, got {scales}")
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")
        if self.width_scale < 0 or self.width_offset < 0:
            raise ValueError(
                f"width_scale and width_offset must be >= 0, got {self.width_scale} and {self.width_offset}"
            )


#: Defaults per prompt class; ``"*"`` applies to any other class (a thin dark structure).
DEFAULT_RIDGE_PARAMS: dict[str, RidgeParams] = {
    "crack": RidgeParams(),
    "taping_area": RidgeParams(
        sigmas=(2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0), polarity="auto", width_scale=3.5, width_offset=6.0,
        straight=True, dark_sigmas=(1.0, 2.0, 3.0, 4.0), grey_voids=True,
    ),
    "*": RidgeParams(polarity="auto"),
}


def minimal_path(cost: np.ndarray, max_step: int = 2) -> np.ndarray:
    """Cheapest top-to-bottom path through ``cost`` (dynamic programming, one pixel per row).

    Args:
        cost: ``(H, W)`` non-negative float cost per pixel.
        max_step: Largest column change between consecutive rows.

    Returns:
        ``(H,)`` int column of the path in each row.
    """
    height, width = cost.shape
    shifts = np.arange(-max_step, max_step + 1)
    acc = cost[0].astype(np.float32).copy()
    back = np.zeros((height, width), np.int8)
    candidates = np.empty((len(shifts), width), np.float32)
    for row in range(1, height):
        candidates.fill(np.inf)
        for k, d in enumerate(shifts):
            if d > 0:
                candidates[k, d:] = acc[:-d]
            elif d < 0:
                candidates[k, :d] = acc[-d:]
            else:
                candidates[k] = acc
        arg = candidates.argmin(axis=0)
        acc = candidates[arg, np.arange(width)] + cost[row]
        back[row] = shifts[arg]
    cols = np.empty(height, np.int64)
    cols[-1] = int(acc.argmin())
    for row in range(height - 1, 0, -1):
        cols[row - 1] = cols[row] - back[row, cols[row]]
    return cols


def fit_line(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Robust straight-line fit ``col = a * row + b`` (response-weighted, Cauchy reweighting).

    Returns:
        ``(len(rows),)`` int columns of the fitted line; they may leave the box, where the line
        does (callers draw only the columns inside it).
    """
    design = np.stack([rows, np.ones_like(rows)], axis=1).astype(np.float64)
    w = np.asarray(weights, np.float64) + 1e-9
    scale = max(2.0, 0.02 * len(rows))
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], cols * sw, rcond=None)
        resid = cols - design @ coef
        w = (np.asarray(weights, np.float64) + 1e-9) / (1.0 + (resid / scale) ** 2)
    return np.round(design @ coef).astype(np.int64)


class RidgeMethod(PseudoMaskMethod):
    """Thin-structure masks from ridge filters and a minimal path (see the module docstring).

    Args:
        params: Per-class :class:`RidgeParams` (``"*"`` for other classes), merged over
            :data:`DEFAULT_RIDGE_PARAMS`.
        fill_below: Fill boxes whose short side is at most this many pixels.
        fill_width: Fill the box when the estimated band width is at least this share of its
            short side (the structure fills the box across).
        context: Ring of image around the box the filters see, in pixels.
        max_step: Largest sideways step of the path per pixel along the box.
        **overrides: :class:`RidgeParams` fields applied to every class, e.g. ``polarity="bright"``.

    Example:
        >>> method = RidgeMethod(polarity="bright")          # compound bands for every class
        >>> method.params_for("taping_area").polarity
        'bright'
    """

    name: ClassVar[str] = "ridge"

    def __init__(
        self,
        params: dict[str, RidgeParams] | None = None,
        *,
        fill_below: int = 8,
        fill_width: float = 1.0,
        context: int = 16,
        max_step: int = 2,
        **overrides,
    ):
        if fill_below < 0 or context < 0 or max_step < 1:
            raise ValueError(
                f"expected fill_below >= 0, context >= 0, max_step >= 1; got fill_below={fill_below}, "
                f"context={context}, max_step={max_step}"
            )
        unknown = set(overrides) - set(RidgeParams.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown ridge parameter(s) {sorted(unknown)}; expected fill_below, context, max_step or one of "
                f"{sorted(RidgeParams.__dataclass_fields__)}"
            )
        merged = {**DEFAULT_RIDGE_PARAMS, **(params or {})}
        self.params = {name: replace(p, **overrides) for name, p in merged.items()}
        self.fill_below, self.context, self.max_step = int(fill_below), int(context), int(max_step)
        self.fill_width = float(fill_width)

    def config(self) -> dict:
        return {
            "params": {name: asdict(p) for name, p in self.params.items()},
            "fill_below": self.fill_below, "fill_width": self.fill_width, "context": self.context,
            "max_step": self.max_step,
        }

    def params_for(self, class_name: str) -> RidgeParams:
        """The parameters used for boxes of ``class_name``."""
        return self.params.get(class_name, self.params["*"])

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        height, width = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        params = self.params_for(class_name)
        void = void_mask(image, grey=params.grey_voids)
        out = np.zeros((len(boxes), height, width), dtype=bool)
        for i, box in enumerate(boxes):
            ya, yb, xa, xb = box_window(box, height, width)
            if min(yb - ya, xb - xa) <= self.fill_below:
                out[i, ya:yb, xa:xb] = True
                continue
            out[i, ya:yb, xa:xb] = self.box_mask(gray, void, (ya, yb, xa, xb), params)
        return out

    def box_mask(
        self, gray: np.ndarray, void: np.ndarray, window: tuple[int, int, int, int], params: RidgeParams
    ) -> np.ndarray:
        """The mask inside one box window ``(ya, yb, xa, xb)``: ``(yb - ya, xb - xa)`` bool."""
        ya, yb, xa, xb = window
        height, width = gray.shape
        cy0, cy1 = max(ya - self.context, 0), min(yb + self.context, height)
        cx0, cx1 = max(xa - self.context, 0), min(xb + self.context, width)
        crop = gray[cy0:cy1, cx0:cx1]
        crop_void = void[cy0:cy1, cx0:cx1]
        if crop_void.any():
            if crop_void.all():
                return np.ones((yb - ya, xb - xa), bool)
            crop = fill_void(crop, crop_void)
        inner = (slice(ya - cy0, yb - cy0), slice(xa - cx0, xb - cx0))
        tall = (yb - ya) >= (xb - xa)
        traces = {}
        for polarity in ("dark", "bright") if params.polarity == "auto" else (params.polarity,):
            trace = self._trace(crop, inner, tall, polarity, params)
            if trace is not None:
                traces[polarity] = trace
        if not traces:  # a flat box: nothing to trace
            return np.ones((yb - ya, xb - xa), bool)
        if len(traces) == 2 and self.prefer_band(traces["dark"], traces["bright"]):
            cols, _, width = traces["bright"]  # a seam inside its compound band: the band
        else:
            cols, _, width = max(traces.values(), key=lambda t: t[1])
        across = (xb - xa) if tall else (yb - ya)
        rows = np.flatnonzero((cols >= 0) & (cols < across))  # a fitted line may leave the box
        path = np.zeros((len(cols), across), bool)
        path[rows, cols[rows]] = True
        if not tall:
            path = path.T
        if width >= self.fill_width * min(yb - ya, xb - xa):
            return np.ones((yb - ya, xb - xa), bool)  # the band is as wide as the box
        radius = round(width / 2.0)
        mask = path.astype(np.uint8)
        if radius > 0:
            mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
        return mask.astype(bool)

    @staticmethod
    def prefer_band(dark: tuple, bright: tuple) -> bool:
        """True when the dark line runs inside the bright band (a seam or tape edge in compound)."""
        offset = np.abs(dark[0] - bright[0])
        return float(np.median(offset)) <= bright[2] / 2.0

    def _trace(
        self, crop: np.ndarray, inner: tuple[slice, slice], tall: bool, polarity: str, params: RidgeParams
    ) -> tuple[np.ndarray, float, float] | None:
        """Trace one polarity: ``(columns along the long axis, mean response, band width)`` or None."""
        scales = params.dark_sigmas if polarity == "dark" and params.dark_sigmas else params.sigmas
        responses = ridge_responses(crop, scales, polarity)[:, inner[0], inner[1]]
        if not tall:
            responses = responses.transpose(0, 2, 1)  # rows run along the box's long axis
        strength = responses.max(axis=0)
        top = float(strength.max())
        if top <= 0:
            return None
        cols = minimal_path(1.0 - strength / top, self.max_step)
        rows = np.arange(len(cols))
        weights = strength[rows, cols]
        score = float(weights.mean())
        if params.straight:
            fitted = fit_line(rows, cols, weights)
            inside = (fitted >= 0) & (fitted < strength.shape[1])
            if inside.any():
                cols = fitted
                rows, weights = rows[inside], strength[rows[inside], fitted[inside]]
        # Band width from the scales responding on the path, weighted by their strength.
        sigmas = np.asarray(scales)[responses.argmax(axis=0)[rows, cols[rows]]]
        sigma = float(np.sum(sigmas * weights) / max(float(weights.sum()), 1e-9))
        return cols, score, params.width_scale * sigma + params.width_offset
