"""Appearance-free and colour-model methods: the filled box (the floor) and OpenCV GrabCut."""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np

from drywallqa.pseudomask.base import PseudoMaskMethod, box_masks, box_window


class BoxMethod(PseudoMaskMethod):
    """The filled box: the floor every other method must beat.

    Example:
        >>> import numpy as np
        >>> m = BoxMethod()(np.zeros((4, 6, 3), np.uint8), np.array([[1, 1, 3, 4]]), "crack")
        >>> m.shape, int(m.sum())
        ((1, 4, 6), 6)
    """

    name: ClassVar[str] = "box"

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        return box_masks(boxes, *image.shape[:2])


class GrabCutMethod(PseudoMaskMethod):
    """OpenCV GrabCut initialised with each box as the probable-foreground rectangle.

    GrabCut runs on a crop of the box plus ``margin`` (the ring around the box is the definite
    background it learns the wall's colours from), one box at a time. When GrabCut fails (no
    background ring because the box fills the image, a degenerate colour model) or returns an
    empty or near-empty mask, the filled box is returned instead.

    Args:
        margin: Background ring around the box as a fraction of the box's longer side.
        min_margin: Lower bound of the ring in pixels.
        iterations: GrabCut iterations.
        min_fill: Results covering less than this share of the box fall back to the box.
        max_side: Crops whose longer side exceeds this are shrunk to it for GrabCut (whose cost
            grows with the pixel count) and the result is scaled back up.
    """

    name: ClassVar[str] = "grabcut"

    def __init__(self, margin: float = 0.1, min_margin: int = 8, iterations: int = 5, min_fill: float = 0.01,
                 max_side: int = 256):
        if margin < 0 or min_margin < 1 or iterations < 1 or not 0 <= min_fill < 1 or max_side < 16:
            raise ValueError(
                "expected margin >= 0, min_margin >= 1, iterations >= 1, 0 <= min_fill < 1, max_side >= 16; got "
                f"margin={margin}, min_margin={min_margin}, iterations={iterations}, min_fill={min_fill}, "
                f"max_side={max_side}"
            )
        self.margin, self.min_margin, self.iterations, self.min_fill = margin, min_margin, iterations, min_fill
        self.max_side = max_side

    def config(self) -> dict:
        return {"margin": self.margin, "min_margin": self.min_margin, "iterations": self.iterations,
                "min_fill": self.min_fill, "max_side": self.max_side}

    def predict_boxes(self, image: np.ndarray, boxes: np.ndarray, class_name: str) -> np.ndarray:
        height, width = image.shape[:2]
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        out = box_masks(boxes, height, width)
        for i, box in enumerate(boxes):
            ya, yb, xa, xb = box_window(box, height, width)
            if yb - ya < 2 or xb - xa < 2:
                continue
            pad = max(self.min_margin, round(self.margin * max(yb - ya, xb - xa)))
            cy0, cy1 = max(ya - pad, 0), min(yb + pad, height)
            cx0, cx1 = max(xa - pad, 0), min(xb + pad, width)
            rect = (xa - cx0, ya - cy0, xb - xa, yb - ya)
            if rect[2] >= cx1 - cx0 and rect[3] >= cy1 - cy0:
                continue  # no background ring to learn from: keep the box
            crop = np.ascontiguousarray(bgr[cy0:cy1, cx0:cx1])
            scale = min(1.0, self.max_side / max(crop.shape[:2]))
            if scale < 1.0:
                crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                x0, y0 = round(rect[0] * scale), round(rect[1] * scale)
                rect = (x0, y0, max(1, min(round(rect[2] * scale), crop.shape[1] - x0)),
                        max(1, min(round(rect[3] * scale), crop.shape[0] - y0)))
            gc_mask = np.zeros(crop.shape[:2], np.uint8)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: same input, same mask
            try:
                cv2.grabCut(crop, gc_mask, rect, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
            except cv2.error:
                continue  # e.g. a flat crop gives a singular colour model: keep the box
            fg = ((gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)).astype(np.uint8)
            if scale < 1.0:
                fg = cv2.resize(fg, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_NEAREST)
            fg = fg.astype(bool)
            inside = fg[ya - cy0:yb - cy0, xa - cx0:xb - cx0]
            if inside.mean() <= self.min_fill:
                continue
            out[i] = False
            out[i, ya:yb, xa:xb] = inside
        return out
