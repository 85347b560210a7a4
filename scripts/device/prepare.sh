#!/usr/bin/env bash
# Prepare what a GPU call carries (docs/gpu.md), here on the CPU machine, before asking for a GPU:
#   .device/wheels/  the packages the GPU machine lacks, for its Python 3.12 (x86-64), pinned to the
#                    versions installed here
#   .device/pack/    the training pack of the capacity ladder (the data section all its recipes
#                    share, configs/device-finetune.yaml), sized to what is left of the 64 MiB a call
#                    carries once the repository and the wheels are counted: every photo at the
#                    training resolution (448 px) as WebP, the validation photos at q95, the test
#                    photos at q50, the training photos at the highest quality that fits; the
#                    targets resized as training resizes them; the ImageNet weights of the lite2 rung
# Then it prints the exact device call.
#   bash scripts/device/prepare.sh [DATA_DIR]        (default ../shared/data)
# Settings: DRYWALLQA_PACK_CONFIG (the pack's recipe), DRYWALLQA_PACK_SIZE (photo side; 0 packs
# them at their own size, re-encoded where they do not fit, with DRYWALLQA_PACK_ORIGINALS as
# original files), DRYWALLQA_PACK_SPLIT_QUALITY (per-split WebP qualities, "valid=95 test=50"),
# DRYWALLQA_PACK_PRETRAINED (recipes whose pretrained weights travel too),
# DRYWALLQA_LOADER_WHEELS=1 (also carry albumentations, for trainer.data_on_device=false).
# Rerunning it rebuilds the pack (--overwrite) and keeps wheels already fetched.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/data}"
config="${DRYWALLQA_PACK_CONFIG:-configs/device-finetune.yaml}"
size="${DRYWALLQA_PACK_SIZE:-448}"
pretrained_for="${DRYWALLQA_PACK_PRETRAINED-configs/device-lite2.yaml}"
# The validation photos near-lossless (the checkpoint is chosen on them; pack_fidelity.sh measures
# them), the test photos small (no training reads them; they travel for the carving check).
split_quality="${DRYWALLQA_PACK_SPLIT_QUALITY-valid=95 test=50}"
originals="${DRYWALLQA_PACK_ORIGINALS-drywall-join}"
pack_args=()
if (( size > 0 )); then
  pack_args+=(--image-size "$size")
  for item in $split_quality; do pack_args+=(--split-quality "$item"); done
else
  for dataset in $originals; do pack_args+=(--originals "$dataset"); done
fi
for recipe in $pretrained_for; do pack_args+=(--pretrained-for "$recipe"); done
python="${PYTHON:-python3}"
mkdir -p .device/wheels

# What pycocotools (RLE targets), simplejpeg (the JPEG check of drywallqa.files) and pydantic (the
# bench's serving parts) need beyond the GPU machine's image (its package list is in the device
# tool's KINDS.md: numpy, scipy, opencv, pyyaml are there; typing-extensions is carried so pydantic
# gets a version it was built against). Training augments on the GPU (trainsets.device_augment),
# so albumentations travels only for the loader path (DRYWALLQA_LOADER_WHEELS=1, docs/gpu.md's fallback).
packages=(pydantic pydantic-core annotated-types typing-inspection typing-extensions pycocotools simplejpeg)
if [ "${DRYWALLQA_LOADER_WHEELS:-0}" = 1 ]; then
  packages+=(albumentations albucore stringzilla simsimd)
fi
for package in "${packages[@]}"; do
  version="$("$python" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package")"
  if ls .device/wheels | grep -i -q "^$(echo "$package" | tr - _)-$version-"; then
    continue
  fi
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .device/wheels "$package==$version" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
done
if [ "${DRYWALLQA_LOADER_WHEELS:-0}" != 1 ]; then  # fetched by an earlier run, not needed now
  rm -f .device/wheels/albumentations-* .device/wheels/albucore-* .device/wheels/stringzilla-* .device/wheels/simsimd-*
fi

# Everything that travels besides the pack: tracked files and untracked ones git does not ignore.
tree_bytes="$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)"
wheel_bytes="$(du -cb .device/wheels/*.whl | tail -1 | cut -f1)"
# The device tool refused a 62.9 MiB call (66 MB) as "larger than 64 MiB": it counts more than the
# files' bytes (disk blocks or decimal megabytes), so the pack leaves 6 MiB of headroom.
max_mib="$("$python" -c "import sys; t, w = map(int, sys.argv[1:]); print(round(min(45.0, 64 - (t + w) / 2**20 - 6.0), 1))" "$tree_bytes" "$wheel_bytes")"
echo "repository $(( tree_bytes / 1048576 )) MiB + wheels $(( wheel_bytes / 1048576 )) MiB travel; the pack gets at most $max_mib MiB"

drywallqa trainset pack --config "$config" --data "$data" --out .device/pack --max-mib "$max_mib" --overwrite \
  "${pack_args[@]}"

total="$(( tree_bytes + $(du -cb .device | tail -1 | cut -f1) ))"
echo "a device call carries $(( total / 1048576 )) MiB of 64 (.device is git-ignored and travels as carry)"
cat <<'EOF'

The device call (one; about 9 minutes; then give the machine back):
  run(command="bash scripts/device/run.sh", carry=[".device"], timeout_s=600)
Then, here: bash scripts/device/after.sh <the folder the call's files came back to>
EOF
