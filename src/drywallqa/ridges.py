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

from collections.abc import Iterator, Sequence

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
    out = np.empty((len(sigmas), *gray.shape), np.float32)
    for i, strength in enumerate(_ridge_strengths(gray, sigmas, polarity)):
        out[i] = strength
    return out


def ridge_response(
    gray: np.ndarray, sigmas: Sequence[float], polarity: str, *, reduced_sigma: float | None = None
) -> np.ndarray:
    """The maximum over scales of :func:`ridge_responses`, ``(H, W)`` float32.

    Args:
        gray: ``(H, W)`` float32 grey image.
        sigmas: Gaussian scales in pixels.
        polarity: ``"dark"`` or ``"bright"``.
        reduced_sigma: If given, each scale of at least twice this is filtered on a copy of the
            image reduced by the largest power of two that keeps the scale at least this many
            (reduced) pixels, and its response enlarged back (bilinear). The response is
            scale-normalised, so it does not depend on the pixel size, and a blur that wide keeps
            nothing a reduced copy lacks; a Gaussian's cost grows with its scale, so the large
            scales cost a small share of their full-size cost. None: every scale at full size,
            as :func:`ridge_responses`.

    Raises:
        ValueError: If ``sigmas`` is empty, or ``polarity`` is neither.
    """
    by_factor: dict[int, list[float]] = {}
    for sigma in sigmas:
        by_factor.setdefault(_reduction(float(sigma), reduced_sigma, gray.shape), []).append(float(sigma))
    out: np.ndarray | None = None
    height, width = gray.shape
    for factor, scales in sorted(by_factor.items()):
        image = _reduced(gray, factor)
        # A running maximum: the stack's maximum without the stack (a reduction over its first
        # axis costs as much as a scale's filtering).
        for strength in _ridge_strengths(image, [sigma / factor for sigma in scales], polarity):
            if factor > 1:
                strength = cv2.resize(strength, (width, height), interpolation=cv2.INTER_LINEAR)
            out = strength if out is None else np.maximum(out, strength, out=out)
    if out is None:
        raise ValueError("sigmas must name at least one scale")
    return out


def _reduction(sigma: float, reduced_sigma: float | None, shape: tuple[int, ...]) -> int:
    """The power of two by which an image of ``shape`` is reduced to blur it by ``sigma``: the
    largest that keeps ``sigma`` at least ``reduced_sigma`` reduced pixels and the image at least
    16 pixels across (1 when ``reduced_sigma`` is None or 0)."""
    factor = 1
    if reduced_sigma:
        while sigma / (2 * factor) >= reduced_sigma and min(shape) >= 2 * factor * 16:
            factor *= 2
    return factor


def _reduced(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` reduced by ``factor`` (area averaging), or itself when ``factor`` is 1."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    reduced: np.ndarray = cv2.resize(image, (round(width / factor), round(height / factor)), interpolation=cv2.INTER_AREA)
    return reduced


def _ridge_strengths(gray: np.ndarray, sigmas: Sequence[float], polarity: str) -> Iterator[np.ndarray]:
    """Each scale's ``(H, W)`` float32 response of :func:`ridge_responses`, one at a time."""
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'dark' or 'bright', got {polarity!r}")
    for sigma in sigmas:
        g = cv2.GaussianBlur(gray, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)
        # 3x3 Sobel second derivatives are 4x the unit-step finite differences, all alike.
        dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
        # root = sqrt((dxx - dyy)^2 + 4 dxy^2), trace = dxx + dyy: in place, the same float32 arithmetic.
        root = np.subtract(dxx, dyy)
        np.multiply(root, root, out=root)
        np.multiply(dxy, dxy, out=dxy)
        np.multiply(dxy, np.float32(4.0), out=dxy)
        np.add(root, dxy, out=root)
        np.sqrt(root, out=root)
        trace = np.add(dxx, dyy, out=dxx)
        # dark: the larger eigenvalue (> 0 across a valley), (trace + root) / 2; bright: minus the
        # smaller one, -(trace - root) / 2.
        if polarity == "dark":
            strength = np.multiply(np.add(trace, root, out=trace), np.float32(0.5), out=trace)
        else:
            strength = np.multiply(np.subtract(trace, root, out=trace), np.float32(-0.5), out=trace)
        np.maximum(strength, np.float32(0.0), out=strength)
        yield np.multiply(strength, np.float32(float(sigma) ** 2 / 4.0), out=strength)


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
    level = channel_max(image)
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
        n, labels = cv2.connectedComponents(flat, connectivity=4)
        x, y, w, h, area = component_stats(labels, n)
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


def fill_void(gray: np.ndarray, void: np.ndarray, sigma: float = 16.0, *, reduced_sigma: float | None = None) -> np.ndarray:
    """Replace ``void`` pixels of a grey image by the local mean of the valid pixels around them.

    Normalised convolution: ``blur(gray * valid) / blur(valid)``, so the fill continues the
    surrounding wall smoothly and a cutout's outline gives no ridge response; where no valid
    pixel is within reach the global median is used. With ``reduced_sigma``, both blurs are
    computed on copies reduced as :func:`ridge_response`'s large scales are, and enlarged back
    (bilinear): a fill this smooth loses nothing, at a small share of the cost.
    """
    valid = (~void).astype(np.float32)
    factor = _reduction(sigma, reduced_sigma, gray.shape)
    num = cv2.GaussianBlur(_reduced(gray * valid, factor), (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(_reduced(valid, factor), (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
    if factor > 1:
        size = (gray.shape[1], gray.shape[0])
        num = cv2.resize(num, size, interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, size, interpolation=cv2.INTER_LINEAR)
    # Divided on the void pixels only, the one place the fill is used.
    void_den = den[void]
    local = num[void] / np.maximum(void_den, 1e-3)
    unreached = void_den <= 1e-3
    if unreached.any():
        local[unreached] = float(np.median(gray[~void]))
    filled = gray.astype(np.float32, copy=True)
    filled[void] = local
    return filled


def channel_max(image: np.ndarray) -> np.ndarray:
    """``image.max(axis=2)`` of an ``(H, W, C)`` image, by OpenCV (NumPy's reduction over a short
    last axis costs ten times as much)."""
    channels = cv2.split(np.ascontiguousarray(image))
    level = channels[0]
    for channel in channels[1:]:
        level = cv2.max(level, channel)
    return level


def component_stats(labels: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """``(x, y, width, height, area)``, ``(n,)`` arrays each, of labels ``0..n-1`` as
    :func:`cv2.connectedComponentsWithStats` gives them, at a fraction of its cost (its statistics
    pass costs ten times the labelling); the background's box (label 0) is left zero."""
    from scipy.ndimage import find_objects

    stats = np.zeros((5, n), dtype=np.int64)
    # Areas counted inside each box: far less than a count over the image for a few components.
    by_box = n <= 256
    for k, box in enumerate(find_objects(labels, max_label=n - 1), start=1):
        if box is not None:
            stats[:4, k] = box[1].start, box[0].start, box[1].stop - box[1].start, box[0].stop - box[0].start
            if by_box:
                stats[4, k] = np.count_nonzero(labels[box] == k)
    if by_box:
        stats[4, 0] = labels.size - stats[4, 1:].sum()
    else:
        stats[4] = np.bincount(labels.ravel(), minlength=n)[:n]
    return tuple(stats)
