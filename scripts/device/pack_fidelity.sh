#!/usr/bin/env bash
# What the pack's lossy images cost: the shipped model scored on the carved validation groups
# (threshold 0.5) from the dataset folders and from the pack's re-encoded images.
#   bash scripts/device/pack_fidelity.sh [PACK] [DATA_DIR]      (defaults .device/pack, ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
pack="${1:-.device/pack}"
data="${2:-../shared/data}"
model=src/drywallqa/weights/promptunet
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
drywallqa evaluate --model "$model" --data "$data/cracks" "$data/drywall-join" --splits-from "$model" --split valid \
  --threshold 0.5 --json "$tmp/folders.json" --no-progress >/dev/null
drywallqa evaluate --model "$model" --data "$pack/datasets/cracks" "$pack/datasets/drywall-join" --splits-from "$model" \
  --split valid --threshold 0.5 --json "$tmp/pack.json" --no-progress >/dev/null
python - "$tmp" "$pack" <<'PY'
import json, sys
from pathlib import Path

tmp, pack = Path(sys.argv[1]), Path(sys.argv[2])
images = json.loads((pack / "pack.json").read_text())["images"]
folders, packed = (json.loads((tmp / f"{n}.json").read_text())["classes"] for n in ("folders", "pack"))
print(f"carved validation groups, shipped model, threshold 0.5; pack images: {images['format']} q{images['quality']}, "
      f"{images['psnr_db']} dB PSNR")
print("| class | images | IoU from folders | IoU from the pack | difference |")
print("|---|---|---|---|---|")
for name in sorted(folders):
    a, b = folders[name]["iou"]["mean"], packed[name]["iou"]["mean"]
    print(f"| {name} | {folders[name]['images']} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
PY
