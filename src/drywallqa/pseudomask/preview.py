"""Preview grid of pseudo-masks: one row per image, one column per method.

The first column shows the image with its boxes (green) and, where known, the outline of the
true mask (yellow); each further column shows one method's masks (red) over the image, with the
image's IoU against the truth when known. Drawn with OpenCV, written atomically as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from drywallqa.files import write_image
from drywallqa.pseudomask.base import PseudoMaskMethod, box_window, predict_annotations

BOX_RGB = (0, 220, 0)
TRUTH_RGB = (255, 230, 0)
MASK_RGB = (230, 30, 30)
HEADER = 28


def overlay(image: np.ndarray, mask: np.ndarray, rgb=MASK_RGB, alpha: float = 0.5) -> np.ndarray:
    """Blend ``rgb`` over the pixels of a bool ``mask`` in an RGB ``uint8`` image (returns a copy)."""
    out = image.copy()
    out[mask] = (out[mask] * (1 - alpha) + np.asarray(rgb, np.float32) * alpha).astype(np.uint8)
    return out


def _draw_boxes(image: np.ndarray, boxes, thickness: int) -> None:
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(image, (int(x1), int(y1)), (int(np.ceil(x2)) - 1, int(np.ceil(y2)) - 1), BOX_RGB, thickness)


def _fit(image: np.ndarray, tile: int) -> np.ndarray:
    """Letterbox an RGB image into a ``tile x tile`` square (dark grey padding)."""
    h, w = image.shape[:2]
    scale = tile / max(h, w)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    out = np.full((tile, tile, 3), 40, np.uint8)
    y0, x0 = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    out[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return out


def _label(tile: np.ndarray, text: str) -> None:
    cv2.rectangle(tile, (0, tile.shape[0] - 18), (tile.shape[1], tile.shape[0]), (0, 0, 0), -1)
    cv2.putText(tile, text[:40], (4, tile.shape[0] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1,
                cv2.LINE_AA)


def render_row(image: np.ndarray, sample, truths, methods: Sequence[PseudoMaskMethod], tile: int) -> np.ndarray:
    """One grid row for one image: ``(tile, tile * (1 + len(methods)), 3)`` uint8."""
    from drywallqa.pseudomask.evaluate import confusion, iou_dice

    height, width = image.shape[:2]
    thickness = max(1, round(max(height, width) / tile))
    boxes = [a.box for a in sample.annotations]
    first = image.copy()
    truth_mask = np.zeros((height, width), bool)
    known = [t for t in truths if t is not None]
    for truth in known:
        truth_mask |= truth.to_mask(height, width)
    if known:
        contours, _ = cv2.findContours(truth_mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(first, contours, -1, TRUTH_RGB, thickness)
    _draw_boxes(first, boxes, thickness)
    tiles = [_fit(first, tile)]
    _label(tiles[0], sample.image_path.name)
    for method in methods:
        masks = predict_annotations(method, image, list(sample.annotations))
        union = np.zeros((height, width), bool)
        for mask in masks:
            union |= mask
        shown = overlay(image, union)
        _draw_boxes(shown, boxes, max(1, thickness // 2))
        t = _fit(shown, tile)
        text = f"fill {np.mean([_fill(m, a.box) for m, a in zip(masks, sample.annotations)]):.2f}"
        if known and len(known) == len(truths):
            text = f"IoU {iou_dice(*confusion(union, truth_mask))[0]:.2f}"
        _label(t, text)
        tiles.append(t)
    return np.hstack(tiles)


def _fill(mask: np.ndarray, box) -> float:
    """Mask pixels / box pixels inside the box window."""
    ya, yb, xa, xb = box_window(box, *mask.shape)
    window = mask[ya:yb, xa:xb]
    return float(window.mean()) if window.size else 0.0


def write_preview(
    path: str | os.PathLike,
    items: Sequence,
    methods: Sequence[PseudoMaskMethod],
    *,
    rows: int = 6,
    seed: int = 0,
    tile: int = 256,
) -> Path:
    """Write a preview grid of ``rows`` randomly chosen (seeded) evaluation items.

    Args:
        path: Output PNG path.
        items: :class:`drywallqa.pseudomask.evaluate.EvalItem` objects to choose from.
        methods: Methods to show, one column each.
        rows: Number of images (rows).
        seed: Seed of the choice.
        tile: Side of each square tile in pixels.

    Returns:
        The written path.
    """
    items = [it for it in items if it.sample.annotations]
    if not items:
        raise ValueError("no annotated images to preview")
    chosen = np.random.default_rng(seed).choice(len(items), min(rows, len(items)), replace=False)
    grid_rows = []
    for index in sorted(chosen):
        item = items[int(index)]
        grid_rows.append(render_row(item.sample.load_image(), item.sample, item.truths, methods, tile))
    header = np.full((HEADER, grid_rows[0].shape[1], 3), 255, np.uint8)
    for col, name in enumerate(["image, boxes, truth"] + [m.name for m in methods]):
        cv2.putText(header, name, (col * tile + 6, HEADER - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return write_image(path, np.vstack([header, *grid_rows]))
