"""Calibrated per-class thresholds of a model: the ``calibration.json`` file, written and read.

:func:`~drywallqa.inference.calibration_file` says where a spec's file lives;
:func:`~drywallqa.inference.load_predictor` applies its thresholds unless a threshold is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drywallqa.errors import ConfigError

CALIBRATION_FILE = "calibration.json"


def write_calibration(path: str | os.PathLike, sweep: Any, command: str = "") -> None:
    """Write a model's ``calibration.json`` from a per-class threshold sweep
    (:func:`drywallqa.evaluation.calibrate_thresholds`), atomically."""
    from datetime import datetime, timezone

    from drywallqa.files import atomic_write_json

    atomic_write_json(path, {
        "thresholds": dict(sorted(sweep.chosen_per_class.items())),
        "chosen_on": {"split": sweep.split, "images": sweep.images, "objective": "per-image mean IoU of the class",
                      "candidates": sweep.thresholds, "mean_iou": sweep.per_class},
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, indent=1)


def read_calibration(path: Path | None) -> dict[str, Any]:
    """A calibration file (see :func:`~drywallqa.inference.calibration_file`): per-class thresholds and how they were
    chosen; ``{}`` when ``path`` is None or missing.

    Raises:
        ConfigError: If the file exists but is not a calibration, naming it.
    """
    from drywallqa.files import read_json

    if path is None or not path.is_file():
        return {}
    data = read_json(path)
    thresholds = data.get("thresholds") if isinstance(data, dict) else None
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in thresholds.values()
    ):
        raise ConfigError(f"{path}: expected {{\"thresholds\": {{class: probability in (0, 1)}}}}")
    calibration: dict[str, Any] = data
    return calibration

