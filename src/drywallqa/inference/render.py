"""Overlays, mask PNGs and JPEG thumbnails of predictions: for predict, reports, the HTTP service and notebooks."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from drywallqa.processing import encode_mask_png

# RGB overlay colour per figure set: red cracks, blue taping, amber for anything else.
FIGURE_SET_COLOURS = {"crack": (235, 40, 40), "joint": (30, 130, 255), "area": (255, 176, 0)}


@functools.lru_cache(maxsize=16)
def _tint_table(colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    """``(256, 1, 3)`` lookup table: channel value ``v`` blended with ``colour`` at opacity ``alpha``."""
    values = np.arange(256, dtype=np.float32)[:, None] * (1 - alpha) + np.asarray(colour, dtype=np.float32) * alpha
    return values.round().clip(0, 255).astype(np.uint8).reshape(256, 1, 3)


def render_overlay(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (235, 40, 40),
                   alpha: float = 0.45) -> np.ndarray:
    """Tint the mask on the image and outline it, so thin cracks stay visible.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)``.
        mask: ``(H, W)`` bool.
        colour: RGB tint and outline colour.
        alpha: Opacity of the tint.

    Returns:
        RGB ``uint8`` ``(H, W, 3)``.
    """
    import cv2

    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} sizes differ")
    out = np.array(image, dtype=np.uint8, copy=True)
    # Only the mask's bounding box is touched: a crack covers a few percent of a photo.
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    if not (w and h):
        return out
    box, inside = out[y : y + h, x : x + w], mask[y : y + h, x : x + w].astype(np.uint8)
    # The blend of every possible byte with the tint, looked up over the box and copied where the mask
    # is: the same bytes as float maths on the masked pixels, at a quarter of the CPU time.
    cv2.copyTo(cv2.LUT(box, _tint_table(tuple(colour), float(alpha))), inside, box)
    contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x, y))
    # Outline thickness grows with the image so it stays visible in thumbnails of large photos.
    thickness = max(1, round(max(mask.shape) / 500))
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), thickness)
    return out


# One encoder of mask PNGs for predict, serve and the benchmark.
mask_png_bytes = encode_mask_png


def read_mask_png(path) -> np.ndarray:
    """A mask PNG written by :func:`mask_png_bytes` as ``(H, W)`` bool.

    Raises:
        DataError: If the file is missing or not an image, naming it.
    """
    from drywallqa.files import open_image

    with open_image(path) as img:
        return np.asarray(img.convert("L")) > 127


def jpeg_bytes(image: np.ndarray, quality: int = 90, max_side: int | None = None) -> bytes:
    """Encode an RGB ``uint8`` image as JPEG, shrunk to ``max_side`` pixels on its long side.

    Pillow's encoder: OpenCV's, with its RGB-to-BGR conversion, measured 0.3 ms more CPU per
    640 px overlay, its thread pool idling between the two calls.
    """
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
