#!/usr/bin/env bash
# After a GPU call (docs/gpu.md), here on the CPU machine: unpack what came back into
# runs/device-<time>/, write the GPU benches into the docs (docs/performance-gpu.md;
# docs/performance-gpu-e2e.md for the end-to-end predict on its cores), and score every returned
# model beside the shipped one (scripts/device/score_candidates.py): the carved validation groups
# choose, the carved held-out test groups are reported, each with its CPU inference cost.
#   bash scripts/device/after.sh FILES_DIR [DATA_DIR]
# It ships nothing: it prints the command that ships the best model when that one beats the
# shipped model on every class within 2.5x its CPU cost, and `bash scripts/evaluate_shipped.sh`
# then regenerates the model card.
set -euo pipefail
cd "$(dirname "$0")/../.."
files="${1:?the folder the files of the device call came back to}"
data="${2:-../shared/data}"
# DRYWALLQA_RUNS and DRYWALLQA_DOCS move the run folders and the bench pages (the CPU rehearsal
# test writes both into a temporary folder); DRYWALLQA_COST_RUNS sets the CPU cost's sample.
dest="${DRYWALLQA_RUNS:-runs}/device-$(date -u +%Y%m%d-%H%M)"
docs="${DRYWALLQA_DOCS:-docs}"
python="${PYTHON:-python3}"
mkdir -p "$dest"
for name in run.log profile.json; do
  [ -f "$files/$name" ] && cp "$files/$name" "$dest/"
done
if [ -f "$files/profile.json" ]; then
  mkdir -p "$docs/results"
  cp "$files/profile.json" "$docs/results/gpu-profile.json"
fi

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

models=("shipped=src/drywallqa/weights/promptunet")
for tar in "$files"/*.tar; do
  [ -e "$tar" ] || continue
  name="$(basename "$tar" .tar)"
  mkdir -p "$dest/$name"
  tar -xf "$tar" -C "$dest/$name"
  if [ -f "$dest/$name/model/model.safetensors" ]; then
    models+=("$name=$dest/$name/model")
  else
    echo "$name: no model came back (see $dest/$name/train.log)"
  fi
done

"$python" scripts/device/score_candidates.py --data "$data" --runs "${DRYWALLQA_COST_RUNS:-30}" \
  --json "$dest/candidates.json" "${models[@]}"
