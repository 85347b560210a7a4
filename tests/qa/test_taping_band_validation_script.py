"""scripts/taping_band_validation.py turns its records into the page's tables (no model, no data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "taping_band_validation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("taping_band_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quickstart_record(seed: int, iou_predicted: float, iou_refined: float, width_refined: float | None) -> dict:
    return {"seed": seed, "image": f"wall-{seed}.jpg", "iou_predicted": iou_predicted, "iou_refined": iou_refined,
            "width_exact_px": 20.0, "width_predicted_px": 30.0, "width_refined_px": width_refined,
            "lines": ["seam"], "refined": 1, "kept": 0, "left_out": 0, "seconds": 0.1}


def test_the_page_has_a_row_per_seed_and_one_for_all_with_the_records_figures():
    script = load_script()
    data = {
        "machine": "test CPU", "runtime": "tiny", "shipped_model": "0" * 16, "seeds": [0, 1], "tuning_seeds": "8-15",
        "params": {}, "real_every": 5, "real_folder": "real",
        "quickstart": [quickstart_record(0, 0.5, 0.9, 20.0), quickstart_record(0, 0.7, 0.7, 24.0),
                       quickstart_record(1, 0.0, 0.0, None)],
        "real": [{"image": "r.jpg", "size": [64, 64], "mask_px": 100, "band_px": 40, "band_outside_boxes_px": 0,
                  "largest_box_short_side_px": 20, "width_mask_px": 20.0, "width_band_px": 8.0,
                  "width_max_band_px": 9.0, "lines": ["seam"], "line_widths_px": [8.0], "refined": 1, "kept": 0,
                  "left_out": 0, "seconds": 0.2}],
        "real_train_straight_box_shares": [0.05, 0.07, 0.09],
    }
    page = script.markdown(data)
    rows = [line.split(" | ") for line in page.splitlines() if line.startswith(("| 0 |", "| 1 |", "| **all** |"))]
    assert [row[0] for row in rows] == ["| 0", "| 1", "| **all**"]
    seed0 = rows[0]
    assert seed0[1] == "2" and seed0[2] == "0.600" and seed0[3] == "0.800"  # photos, mean IoU predicted, refined
    assert seed0[8] == "2 of 2 |"  # refined widths 1.0x and 1.2x are both within 0.8-1.25x
    assert rows[2][1] == "3" and rows[2][8] == "2 of 2 |"  # a photo without a refined width is not counted
    assert "| band pixels outside the predicted components' boxes | 0 |" in page
