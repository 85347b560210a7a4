#!/usr/bin/env bash
# The one command a lent GPU runs (docs/gpu.md): install the carried wheels, check the GPU, train
# the device recipes from the training pack at once within a wall-clock budget, benchmark, and
# leave in $OUT what comes back (at most 8 files of 16 MiB, two folders deep at most):
#
#   $OUT/run.log             this script's whole output
#   $OUT/<recipe>.tar        per recipe: model/ (config.json, model.safetensors, training.json),
#                            training_curves.png, metrics.csv, train.log
#   $OUT/bench-e2e.json, bench-e2e.md   `drywallqa bench`'s end-to-end predict on this machine's
#                            cores (the product path beside model-only, where cores are to spare)
#   $OUT/bench.json, bench.md   `drywallqa bench` on the same machine
#
# It finishes inside 9 minutes with the defaults (one device call may run 10). Settings, from the
# environment:
#   OUT                        where the files to bring back go (the device tool sets it)
#   DRYWALLQA_PACK             training pack (default .device/pack; scripts/device/prepare.sh)
#   DRYWALLQA_WHEELS           wheels of what the machine lacks (default .device/wheels)
#   DRYWALLQA_TRAIN_MINUTES    training budget of every recipe, run side by side (default 6)
#   DRYWALLQA_RECIPES          training configs, space-separated (default configs/device-finetune.yaml:
#                              loading bounds training, so one recipe gets twice the images of two)
#   DRYWALLQA_TRAIN_ARGS       more `drywallqa train` flags for every recipe
#   DRYWALLQA_E2E_SECONDS      budget of the end-to-end bench, run before the bench (default 60; 0 skips it)
#   DRYWALLQA_BENCH_SECONDS    bench budget (default 90; 0 skips the bench)
#   DRYWALLQA_BENCH_ARGS       more `drywallqa bench` flags (the CPU rehearsal passes --quick)
#   DRYWALLQA_DEADLINE_SECONDS the whole script's limit, which the bench budget yields to (default 540)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="${OUT:?set OUT to the folder whose files come back}"
pack="${DRYWALLQA_PACK:-.device/pack}"
wheels="${DRYWALLQA_WHEELS:-.device/wheels}"
minutes="${DRYWALLQA_TRAIN_MINUTES:-6}"
recipes="${DRYWALLQA_RECIPES:-configs/device-finetune.yaml}"
train_args="${DRYWALLQA_TRAIN_ARGS:-}"
e2e_seconds="${DRYWALLQA_E2E_SECONDS:-60}"
bench_seconds="${DRYWALLQA_BENCH_SECONDS:-90}"
bench_args="${DRYWALLQA_BENCH_ARGS:-}"
deadline="${DRYWALLQA_DEADLINE_SECONDS:-540}"
python="${PYTHON:-python3}"
runs="$(mktemp -d "${TMPDIR:-/tmp}/drywallqa-device-runs.XXXXXX")"
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
export PYTHONUNBUFFERED=1

step() { printf '\n== [%3ds] %s\n' "$SECONDS" "$*"; }
fail() { echo "run.sh: $*"; exit 2; }

step "machine"
date -u
echo "$(uname -srm), $(nproc) cores, $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ -f "$pack/pack.json" ] || fail "no training pack at $pack (build it with scripts/device/prepare.sh)"

step "python packages"
if ! "$python" -c "import albumentations, pycocotools, simplejpeg" 2>/dev/null; then
  ls "$wheels"/*.whl >/dev/null 2>&1 || fail "albumentations, pycocotools or simplejpeg missing and no wheels in $wheels (scripts/device/prepare.sh fetches them)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/drywallqa-site "$wheels"/*.whl || fail "installing the wheels of $wheels failed"
  export PYTHONPATH="/tmp/drywallqa-site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The working tree's package, whether or not it is installed here.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
"$python" - <<'EOF' || fail "drywallqa does not import"
import albumentations, lightning, torch
import drywallqa
print(f"python ok: torch {torch.__version__}, lightning {lightning.__version__}, albumentations {albumentations.__version__}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, CUDA {torch.version.cuda}")
else:
    print("no GPU: this is a CPU rehearsal")
EOF

step "training ${recipes} for ${minutes} min each, side by side"
read -r -a recipe_list <<<"$recipes"
count=${#recipe_list[@]}
workers=$(( ($(nproc) - count) / count ))
(( workers > 14 )) && workers=14
(( workers < 1 )) && workers=1
pids=()
for recipe in "${recipe_list[@]}"; do
  name="$(basename "$recipe" .yaml)"
  # A hard limit beyond the budget: a hung loader must not take the bench and the results with it.
  limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 150 }')
  # shellcheck disable=SC2086  # the extra flags are split on purpose
  timeout --kill-after=20 "$limit" "$python" -m drywallqa.cli train --config "$recipe" --pack "$pack" \
    --out "$runs/$name" --max-minutes "$minutes" --set "trainer.num_workers=$workers" --no-progress $train_args \
    >"$runs/$name.log" 2>&1 &
  pids+=($!)
  echo "$name: pid ${pids[-1]}, $workers loader workers, log in $name.tar"
done
for i in "${!pids[@]}"; do
  name="$(basename "${recipe_list[$i]}" .yaml)"
  wait "${pids[$i]}"
  rc=$?
  echo "--- $name exited $rc after ${SECONDS}s; the end of its log:"
  grep -v -i -E "warning|^\s*warnings\.warn|litlogger" "$runs/$name.log" | tail -n 12
done

# The product path end to end on this machine's cores: on 2 cores the model fills them all, here
# the pipeline's workers have cores of their own (the product-speed issue's predict goal). One
# runtime, no baselines, no serve load (locust is not on this machine).
e2e_budget=$(( deadline - SECONDS - 45 ))
(( e2e_budget > e2e_seconds )) && e2e_budget=$e2e_seconds
if (( e2e_budget >= 20 )); then
  step "end to end on $(nproc) cores (${e2e_budget} s budget)"
  # shellcheck disable=SC2086
  timeout --kill-after=10 $(( e2e_budget + 40 )) "$python" -m drywallqa.cli bench --max-seconds "$e2e_budget" \
    --no-baselines --runtimes torch-fp32 --serve-seconds 0 --json "$out/bench-e2e.json" --markdown "$out/bench-e2e.md" \
    --note "scripts/device/run.sh after training, $(nproc) cores" $bench_args \
    || echo "end-to-end bench stopped (exit $?)"
else
  step "end-to-end bench skipped: ${e2e_budget} s left before the ${deadline} s deadline"
fi

bench_budget=$(( deadline - SECONDS - 45 ))
(( bench_budget > bench_seconds )) && bench_budget=$bench_seconds
if (( bench_budget >= 20 )); then
  step "bench (${bench_budget} s budget)"
  # shellcheck disable=SC2086
  timeout --kill-after=10 $(( bench_budget + 40 )) "$python" -m drywallqa.cli bench --max-seconds "$bench_budget" \
    --json "$out/bench.json" --markdown "$out/bench.md" $bench_args
  rc=$?
  if (( rc != 0 )) && [ -f "$out/bench.json" ]; then
    echo "bench stopped (exit $rc); the report of what it measured:"
    "$python" -m drywallqa.cli bench --from-json "$out/bench.json" --json "$out/bench.json" --markdown "$out/bench.md"
  fi
else
  step "bench skipped: ${bench_budget} s left before the ${deadline} s deadline"
fi

step "collecting"
"$python" "$root/scripts/device/collect.py" --runs "$runs" --out "$out" || fail "the files in $out break the device limits"
rm -rf "$runs"
step "done in ${SECONDS} s"
