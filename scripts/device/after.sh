#!/usr/bin/env bash
# After a GPU call (docs/gpu.md), here on the CPU machine: unpack what came back into
# runs/device-<time>/, score every returned model beside the shipped one on the carved validation
# source groups (threshold 0.5: never a reported split), and write the GPU benches into the docs
# (docs/performance-gpu.md; docs/performance-gpu-e2e.md for the end-to-end predict on its cores).
#   bash scripts/device/after.sh FILES_DIR [DATA_DIR]
# It ships nothing: it prints the command that ships the best model when that one beats the
# shipped model, and `bash scripts/evaluate_shipped.sh` then regenerates the model card.
set -euo pipefail
cd "$(dirname "$0")/../.."
files="${1:?the folder the files of the device call came back to}"
data="${2:-../shared/data}"
# DRYWALLQA_RUNS and DRYWALLQA_DOCS move the run folders and the bench pages (the CPU rehearsal
# test writes both into a temporary folder).
dest="${DRYWALLQA_RUNS:-runs}/device-$(date -u +%Y%m%d-%H%M)"
docs="${DRYWALLQA_DOCS:-docs}"
python="${PYTHON:-python3}"
mkdir -p "$dest"
[ -f "$files/run.log" ] && cp "$files/run.log" "$dest/"

if [ -f "$files/bench.json" ]; then
  mkdir -p "$docs/results"
  cp "$files/bench.json" "$dest/bench.json"
  # A bench cut short (the end-to-end bench and training share the call) must not replace a fuller
  # one in the docs: it stays in the run folder.
  if "$python" scripts/device/fuller_bench.py "$files/bench.json" "$docs/results/gpu-bench.json"; then
    "$python" -m drywallqa.cli bench --from-json "$files/bench.json" --json "$docs/results/gpu-bench.json" --markdown "$docs/performance-gpu.md"
  else
    echo "bench.json measured fewer runtimes than $docs/results/gpu-bench.json: the docs keep theirs ($dest/bench.json has the new one)"
  fi
fi
if [ -f "$files/bench-e2e.json" ]; then
  mkdir -p "$docs/results"
  "$python" -m drywallqa.cli bench --from-json "$files/bench-e2e.json" --json "$docs/results/gpu-bench-e2e.json" \
    --markdown "$docs/performance-gpu-e2e.md"
fi

shipped=src/drywallqa/weights/promptunet
models=("$shipped")
for tar in "$files"/*.tar; do
  [ -e "$tar" ] || continue
  name="$(basename "$tar" .tar)"
  mkdir -p "$dest/$name"
  tar -xf "$tar" -C "$dest/$name"
  if [ -f "$dest/$name/model/model.safetensors" ]; then
    models+=("$dest/$name/model")
  else
    echo "$name: no model came back (see $dest/$name/train.log)"
  fi
done

for model in "${models[@]}"; do
  label="$( [ "$model" = "$shipped" ] && echo shipped || basename "$(dirname "$model")")"
  "$python" -m drywallqa.cli evaluate --model "$model" --data "$data/cracks" "$data/drywall-join" --splits-from "$model" \
    --split valid --threshold 0.5 --json "$dest/valid-$label.json" --no-progress >/dev/null
done
"$python" - "$dest" "${models[@]}" <<'EOF'
import json, sys
from pathlib import Path

dest, models = Path(sys.argv[1]), sys.argv[2:]
rows = []
for model in models:
    label = "shipped" if model.endswith("weights/promptunet") else Path(model).parent.name
    report = json.loads((dest / f"valid-{label}.json").read_text())
    ious = {name: c["iou"]["mean"] for name, c in report["classes"].items()}
    record = json.loads((Path(model) / "training.json").read_text()) if (Path(model) / "training.json").is_file() else {}
    budget = record.get("budget", {})
    rows.append((sum(ious.values()) / len(ious), label, model, ious, budget))
print("carved validation groups, threshold 0.5 (mean IoU per class):")
for mean, label, model, ious, budget in sorted(rows, reverse=True):
    per_class = ", ".join(f"{k} {v:.3f}" for k, v in sorted(ious.items()))
    print(f"  {mean:.4f}  {label:<20} {per_class}   [{budget.get('hardware', '?')}, {budget.get('minutes', '?')} min, "
          f"{budget.get('train_images_per_s', '?')} img/s]")
best = max(rows)
shipped = next(r for r in rows if r[1] == "shipped")
if best[1] != "shipped" and best[0] > shipped[0]:
    print(f"\n{best[1]} beats the shipped model on the validation groups; to ship it:")
    print(f"  python scripts/ship_model.py {best[2]} && bash scripts/evaluate_shipped.sh")
else:
    print("\nnothing returned beats the shipped model on the validation groups; keep it")
    if len(rows) > 1:
        runner_up = max(r for r in rows if r[1] != "shipped")
        print("a model trained on a pack's re-encoded photos can lose on the original ones (docs/gpu.md); "
              "train it 500 steps more on them here, then score it like the rest:")
        print(f"  drywallqa train --config configs/synthetic-mix-small.yaml --data ../shared/data "
              f"--init-from {runner_up[2]} --out runs/{runner_up[1]}-originals")
EOF
