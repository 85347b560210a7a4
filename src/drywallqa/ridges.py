"""Ridge filters for thin structures in a photo, and the padding they must ignore.

Cracks and drywall seams are thin dark lines; joint compound is a bright band. A scale-normalised
Hessian ridge filter (:func:`ridge_responses`) responds to both, by polarity and scale. Exported
photos also hold padding and cutouts (the black corners of rotated exports, Roboflow's cutout
squares) whose straight edges read as lines: :func:`void_mask` finds them and :func:`fill_void`
paints them over with the wall around them.

Used by the ridge pseudo-mask method (:mod:`drywallqa.pseudomask.ridge`) and by the taping band
refined from the photo for the QA figures (:mod:`drywallqa.qa.taping_band`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

VOID_LEVEL = 3  # pixels whose every channel is <= this are padding/cutouts, not wall
VOID_RIM = 5  # pixels around a void that are treated as void too
VOID_MIN_WIDTH = 9  # black regions narrower than this are image content (a deep crack), not void
CUTOUT_LEVEL = 90  # a grey cutout square is at most this bright (max over channels)
CUTOUT_STD = 6.0  # ... and this uniform (grey-level std in 7x7 windows)
CUTOUT_MIN_SIDE = 16  # ... and at least this wide
CUTOUT_FILL = 0.7  # ... and fills this share of its bounding box (a rectangle, maybe rotated)


def ridge_responses(gray: np.ndarray, sigmas: Sequence[float], polarity: str) -> np.ndarray:
    """Scale-normalised Hessian ridge strength at each scale.

    Args:
        gray: ``(H, W)`` float32 grey image.
        sigmas: Gaussian scales in pixels.
        polarity: ``"dark"`` (lines darker than their surroundings) or ``"bright"``.

    Returns:
        ``(len(sigmas), H, W)`` float32, ``>= 0``, large on lines of the requested polarity.
    """
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    out = np.empty((len(sigmas), *gray.shape), np.float32)
    for i, sigma in enumerate(sigmas):
        g = cv2.GaussianBlur(gray, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)
        # 3x3 Sobel second derivatives are 4x the unit-step finite differences, all alike.
        dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
        root = np.sqrt((dxx - dyy) ** 2 + 4.0 * dxy**2)
        trace = dxx + dyy
        # dark: the larger eigenvalue (> 0 across a valley); bright: minus the smaller one.
        strength = 0.5 * (trace + root) if polarity == "dark" else -0.5 * (trace - root)
        out[i] = np.maximum(strength, 0.0) * (float(sigma) ** 2 / 4.0)
    return out


def ridge_response(gray: np.ndarray, sigmas: Sequence[float], polarity: str) -> np.ndarray:
    """The maximum over scales of :func:`ridge_responses`, ``(H, W)`` float32."""
    return ridge_responses(gray, sigmas, polarity).max(axis=0)


def void_mask(image: np.ndarray, grey: bool = True) -> np.ndarray:
    """Padding and cutout pixels of an RGB ``uint8`` image as ``(H, W)`` bool.

    Two kinds, each plus a :data:`VOID_RIM`-pixel rim (JPEG ringing blurs their outline):

    * pure-black regions at least :data:`VOID_MIN_WIDTH` pixels wide: the corners of rotated
      exports and Roboflow's cutout squares;
    * flat dark regions, after a median filter against salt noise: cutout squares whose black a
      brightness augmentation turned into dark grey (nearly uniform components at least
      :data:`CUTOUT_MIN_SIDE` wide that fill :data:`CUTOUT_FILL` of their bounding box), and
      the grey padding of rotated exports (such components touching the image border).

    Thin or irregular dark structures (a deep crack) are never void. With ``grey=False`` only
    pure black counts (for cracks, whose dark interiors can be flat).
    """
    level = image.max(axis=2)
    black = (level <= VOID_LEVEL).astype(np.uint8)
    kernel = np.ones((VOID_MIN_WIDTH, VOID_MIN_WIDTH), np.uint8)
    void = cv2.morphologyEx(black, cv2.MORPH_OPEN, kernel) if black.any() else black
    clean = cv2.medianBlur(level, 5) if grey else level  # Roboflow's salt noise specks cutouts too
    dark = clean <= CUTOUT_LEVEL
    if grey and dark.any():
        gray = clean.astype(np.float32)
        mean = cv2.blur(gray, (7, 7))
        std = np.sqrt(np.maximum(cv2.blur(gray * gray, (7, 7)) - mean * mean, 0.0))
        flat = (dark & (std <= CUTOUT_STD)).astype(np.uint8)
        flat = cv2.morphologyEx(flat, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        flat = cv2.morphologyEx(flat, cv2.MORPH_OPEN, kernel)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        w, h, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
        rectangle = (np.minimum(w, h) >= CUTOUT_MIN_SIDE) & (area >= CUTOUT_FILL * w * h)
        height, width = level.shape
        border = ((x == 0) | (y == 0) | (x + w == width) | (y + h == height)) & (area >= CUTOUT_MIN_SIDE**2)
        keep = rectangle | border
        keep[0] = False
        if keep.any():
            void = void | keep[labels].astype(np.uint8)
    if void.any():
        void = cv2.dilate(void, np.ones((2 * VOID_RIM + 1, 2 * VOID_RIM + 1), np.uint8))
    return void.astype(bool)


def fill_void(gray: np.ndarray, void: np.ndarray, sigma: float = 16.0) -> np.ndarray:
    """Replace ``void`` pixels of a grey image by the local mean of the valid pixels around them.

    Normalised convolution: ``blur(gray * valid) / blur(valid)``, so the fill continues the
    surrounding wall smoothly and a cutout's outline gives no ridge response; where no valid
    pixel is within reach the global median is used.
    """
    valid = (~void).astype(np.float32)
    num = cv2.GaussianBlur(gray * valid, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(valid, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    fallback = float(np.median(gray[~void]))
    local = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fallback)
    return np.where(void, local, gray).astype(np.float32)
