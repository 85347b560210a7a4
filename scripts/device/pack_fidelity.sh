#!/usr/bin/env bash
# What the pack's lossy images cost: a model (the shipped one by default) scored on the carved
# validation groups (threshold 0.5) from the dataset folders and from the pack's re-encoded images.
# A model trained on a pack shows the other side: what it loses on the original photos.
#   bash scripts/device/pack_fidelity.sh [PACK] [DATA_DIR] [MODEL]
#   (defaults .device/pack, ../shared/data, src/drywallqa/weights/promptunet)
set -euo pipefail
cd "$(dirname "$0")/../.."
pack="${1:-.device/pack}"
data="${2:-../shared/data}"
model="${3:-src/drywallqa/weights/promptunet}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
drywallqa evaluate --model "$model" --data "$data/cracks" "$data/drywall-join" --splits-from "$model" --split valid \
  --threshold 0.5 --json "$tmp/folders.json" --no-progress >/dev/null
drywallqa evaluate --model "$model" --data "$pack/datasets/cracks" "$pack/datasets/drywall-join" --splits-from "$model" \
  --split valid --threshold 0.5 --json "$tmp/pack.json" --no-progress >/dev/null
python - "$tmp" "$pack" "$model" <<'PY'
import json, sys
from pathlib import Path

tmp, pack, model = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
images = json.loads((pack / "pack.json").read_text())["images"]
folders, packed = (json.loads((tmp / f"{n}.json").read_text())["classes"] for n in ("folders", "pack"))
print(f"carved validation groups, model {model}, threshold 0.5; pack images: {images['format']} q{images['quality']}, "
      f"{images['psnr_db']} dB PSNR")
print("| class | images | IoU from folders | IoU from the pack | difference |")
print("|---|---|---|---|---|")
for name in sorted(folders):
    a, b = folders[name]["iou"]["mean"], packed[name]["iou"]["mean"]
    print(f"| {name} | {folders[name]['images']} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
PY
