"""Helpers that write tiny datasets and run tiny trainings for tests (importable as `testdata`: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_jpeg(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> Path:
    """Write a small random RGB JPEG and return its path."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def write_coco(split_dir: Path, images: list[dict], annotations: list[dict], categories: list[dict] | None = None) -> Path:
    """Write ``_annotations.coco.json`` in ``split_dir`` (Roboflow-style categories by default)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    categories = categories or [
        {"id": 0, "name": "cracks", "supercategory": "none"},
        {"id": 1, "name": "crack", "supercategory": "cracks"},
    ]
    data = {"info": {}, "images": images, "annotations": annotations, "categories": categories}
    path = split_dir / "_annotations.coco.json"
    path.write_text(json.dumps(data))
    return path


def two_step_fine_tune(model: str, weights: str, data: Path, out: Path, batch_size: int, *sets: str) -> Path:
    """``drywallqa train --model MODEL --set model.args.weights=DIR`` for 2 steps; returns the model folder.

    Two steps end before the first validation, which keeps these runs to seconds.
    """
    from drywallqa.cli import main

    args = ["train", "--data", str(data), "--out", str(out), "--model", model, "--epochs", "1", "--image-size", "64",
            "--batch-size", str(batch_size), "--no-progress", "--set", f"model.args.weights={weights}"]
    for field in ("trainer.max_steps=2", "trainer.num_workers=0", "trainer.log_every_n_steps=1",
                  "trainer.early_stopping_patience=0", *sets):
        args += ["--set", field]
    assert main(args) == 0
    return out / "model"
