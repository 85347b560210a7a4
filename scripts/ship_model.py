#!/usr/bin/env python
"""Make a trained model the shipped default: fp16 weights + training record into the package.

    python scripts/ship_model.py runs/promptunet-lite0-cpu-finetune/model

Writes `src/drywallqa/weights/promptunet/` (config.json, model.safetensors in float16,
training.json, and calibration.json when the run's model folder has one), replacing what is there only once the new folder is complete. For a model
fine-tuned from the shipped one (`model.init_from: default`), the record keeps the earlier
stages' budgets, read from the shipped model before it is replaced. Then rerun
`bash scripts/evaluate_shipped.sh` to regenerate the model card.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from drywallqa.files import atomic_write_json
from drywallqa.inference import CALIBRATION_FILE, default_model_path
from drywallqa.models import PromptSegmentationModel
from drywallqa.training.run import earlier_stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a run's model folder (config.json, model.safetensors, training.json)")
    parser.add_argument("--to", type=Path, default=None, help="destination (default: the package's shipped model)")
    args = parser.parse_args()

    destination = args.to or Path(str(default_model_path()))
    record = json.loads((args.model / "training.json").read_text(encoding="utf-8"))
    init_from = record.get("train_config", {}).get("model", {}).get("init_from")
    if init_from and "earlier_stages" not in record:
        source = Path(str(default_model_path())) if init_from == "default" else Path(init_from)
        record["earlier_stages"] = earlier_stages(source)

    model = PromptSegmentationModel.from_pretrained(args.model)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".ship-") as tmp:
        staged = Path(tmp) / "model"
        model.save_pretrained(staged, fp16=True)
        atomic_write_json(staged / "training.json", record, indent=2)
        # Thresholds chosen for these weights travel with them; thresholds of the old weights do not.
        if (args.model / CALIBRATION_FILE).is_file():
            shutil.copyfile(args.model / CALIBRATION_FILE, staged / CALIBRATION_FILE)
        old = Path(tmp) / "old"
        if destination.exists():
            destination.rename(old)
        staged.rename(destination)
        shutil.rmtree(old, ignore_errors=True)
    size = (destination / "model.safetensors").stat().st_size / 1e6
    print(f"shipped {args.model} -> {destination} ({size:.1f} MB fp16)")
    if not (destination / CALIBRATION_FILE).is_file():
        print("no calibration.json: bash scripts/evaluate_shipped.sh chooses its per-class thresholds first")


if __name__ == "__main__":
    main()
