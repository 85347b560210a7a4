#!/usr/bin/env bash
# What the pack's photos cost: a model (the shipped one by default) scored on the carved validation
# groups (threshold 0.5) from the dataset folders and from the pack's copies of the same photos
# (scripts/device/pack_fidelity.py; docs/gpu.md keeps its table).
#   bash scripts/device/pack_fidelity.sh [PACK] [DATA_DIR] [MODEL] [pack_fidelity.py flags, e.g. --split train]
#   (defaults .device/pack, ../shared/data, src/drywallqa/weights/promptunet)
set -euo pipefail
cd "$(dirname "$0")/../.."
"${PYTHON:-python3}" scripts/device/pack_fidelity.py --pack "${1:-.device/pack}" --data "${2:-../shared/data}" \
  --model "${3:-src/drywallqa/weights/promptunet}" "${@:4}"
