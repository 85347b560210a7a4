"""Rasterising COCO geometry (polygons, RLE, boxes) into binary masks, and back to RLE.

Polygon convention: vertices are truncated to integers and filled with OpenCV ``fillPoly``, so
every pixel the outline touches counts as inside ("inclusive" rasterisation). A crack polygon is
a band only a few pixels wide, so this choice matters: it matches the masks that published
results on the Roboflow crack data were scored against, while rounding the vertices moves crack
IoU by about 5 points and pycocotools' ``annToMask`` draws thinner still. Each polygon of an
annotation is filled separately and the results are united, so overlapping parts never cancel.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def polygons_to_mask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Fill polygons inclusively into a ``(height, width)`` bool mask.

    Args:
        polygons: Each an ``(N, 2)`` float array of ``(x, y)`` pixel coordinates, ``N >= 3``.
        height: Mask height in pixels.
        width: Mask width in pixels.

    Returns:
        ``(height, width)`` bool array, True inside any polygon or on its outline.
    """
    canvas = np.zeros((height, width), dtype=np.uint8)
    for poly in polygons:
        # astype(int32) truncates toward zero: the convention the published masks used.
        pts = np.asarray(poly, dtype=np.float64).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [pts], 1)
    return canvas.astype(bool)


def rle_to_mask(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes counts or uncompressed list counts) to bool."""
    counts = rle["counts"]
    if isinstance(counts, list):
        if sum(counts) != height * width:
            raise ValueError(f"RLE counts sum to {sum(counts)}, expected {height}x{width}={height * width}")
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(counts, str):
        rle = {"size": rle["size"], "counts": counts.encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a bool ``(H, W)`` mask as compressed COCO RLE with string counts (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def component_rle(component: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> dict:
    """:func:`mask_to_rle` of a mask that is empty outside a crop: ``component`` placed at ``offset``.

    Only the crop's foreground pixels are read (their column-major runs are the RLE), so encoding
    one speck of a 12-megapixel photo costs what the speck costs, never a full-size mask.

    Args:
        component: Bool ``(h, w)`` crop, e.g. one labelled component inside its bounding box.
        shape: ``(H, W)`` of the full mask.
        offset: ``(x, y)`` of the crop's top-left corner in the full mask.
    """
    height, width = shape
    x, y = offset
    cols, rows = np.divmod(np.flatnonzero(np.asarray(component, dtype=bool).T), component.shape[0])
    index = (x + cols).astype(np.int64) * height + (y + rows)  # column-major order: already sorted
    if index.size == 0:
        counts = [height * width]
    else:
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        starts = index[np.r_[0, breaks]]
        ends = index[np.r_[breaks - 1, index.size - 1]] + 1
        runs = np.empty(2 * len(starts) + 1, dtype=np.int64)
        runs[0:-1:2] = starts - np.r_[0, ends[:-1]]  # background before each run (0 before a run at the start)
        runs[1::2] = ends - starts
        runs[-1] = height * width - ends[-1]
        counts = runs[:-1].tolist() if runs[-1] == 0 else runs.tolist()
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [int(height), int(width)], "counts": rle["counts"].decode("ascii")}


def boxes_to_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fill ``(N, 4)`` xyxy boxes into a bool mask (a box-filled target).

    Pixel ``(x, y)`` is inside a box when ``x1 <= x < x2`` after rounding the edges, so a box
    ``[0, 0, 10, 5]`` covers exactly 10 × 5 pixels.
    """
    canvas = np.zeros((height, width), dtype=bool)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        xa, ya = max(int(round(x1)), 0), max(int(round(y1)), 0)
        xb, yb = min(int(round(x2)), width), min(int(round(y2)), height)
        canvas[ya:yb, xa:xb] = True
    return canvas


def float_box(box: Sequence[float] | np.ndarray) -> tuple[float, float, float, float]:
    """An ``(x1, y1, x2, y2)`` box as four Python floats, the form :class:`~drywallqa.data.core.Annotation` holds."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, x2, y2


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight xyxy box (exclusive right/bottom edge) around a bool mask, or None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)
