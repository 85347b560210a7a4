"""Helpers of the pseudo-mask tests: a tiny hand-built thin-line dataset (pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def draw_line_image(seed: int, size: int = 160, width: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A textured wall with one dark diagonal line; returns (RGB image, the line's polygon (4, 2))."""
    rng = np.random.default_rng(seed)
    wall = 170 + rng.normal(0, 4, (size, size)).astype(np.float32)
    x0, x1 = int(rng.integers(20, 50)), int(rng.integers(size - 60, size - 20))
    y0, y1 = int(rng.integers(10, 30)), int(rng.integers(size - 30, size - 10))
    d = np.array([x1 - x0, y1 - y0], np.float64)
    n = np.array([-d[1], d[0]]) / np.linalg.norm(d) * width / 2
    polygon = np.array([[x0, y0] + n, [x1, y1] + n, [x1, y1] - n, [x0, y0] - n], np.float32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [polygon.astype(np.int32)], 1)
    wall[mask.astype(bool)] -= 90
    image = np.clip(np.repeat(wall[..., None], 3, axis=2), 0, 255).astype(np.uint8)
    return image, polygon


def write_line_dataset(root: Path, images: int = 6, box_only: bool = False, mixed: bool = False) -> Path:
    """A COCO dataset ``root/train`` of dark diagonal lines (polygons, or boxes only).

    With ``mixed`` the even images keep their polygons and the odd ones are box-only, and one
    background image is added.
    """
    split = root / "train"
    split.mkdir(parents=True, exist_ok=True)
    coco = {"info": {}, "images": [], "annotations": [],
            "categories": [{"id": 0, "name": "cracks", "supercategory": "none"},
                           {"id": 1, "name": "crack", "supercategory": "cracks"}]}
    for i in range(images):
        image, polygon = draw_line_image(i)
        name = f"line{i:02d}_jpg.rf.{i:032x}.jpg"
        Image.fromarray(image).save(split / name, quality=95)
        coco["images"].append({"id": i, "file_name": name, "width": image.shape[1], "height": image.shape[0]})
        x, y = np.floor(polygon.min(0)), np.ceil(polygon.max(0))
        keep_polygon = not box_only and not (mixed and i % 2)
        bbox = [float(x[0]), float(x[1]), float(y[0] - x[0]), float(y[1] - x[1])]
        coco["annotations"].append({
            "id": i, "image_id": i, "category_id": 1, "bbox": bbox,
            "segmentation": [polygon.reshape(-1).round(2).tolist()] if keep_polygon else [], "area": 0, "iscrowd": 0,
        })
    if mixed:
        name = "empty_jpg.rf.ffffffffffffffffffffffffffffffff.jpg"
        Image.fromarray(np.full((160, 160, 3), 170, np.uint8)).save(split / name)
        coco["images"].append({"id": images, "file_name": name, "width": 160, "height": 160})
    (split / "_annotations.coco.json").write_text(json.dumps(coco))
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Bytes of every file under ``root`` (to check a folder was not modified)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
