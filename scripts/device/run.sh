#!/usr/bin/env bash
# The one command a lent GPU runs (docs/gpu.md): install the carried wheels, profile the model,
# train the capacity ladder from the training pack side by side within a wall-clock budget, with
# the data on the GPU, benchmark, and leave in $OUT what comes back (at most 8 files of 16 MiB,
# two folders deep at most):
#
#   $OUT/run.log             this script's whole output (the profile's top kernels included)
#   $OUT/profile.json        scripts/device/profile_model.py's figures
#   $OUT/<recipe>.tar        per recipe trained: model/ (config.json, model.safetensors,
#                            training.json), training_curves.png, metrics.csv, train.log
#   $OUT/bench-e2e.json      `drywallqa bench`'s end-to-end predict on this machine's cores
#   $OUT/bench.json          `drywallqa bench` on the same machine
# (after.sh writes the Markdown pages from the JSON, so they need not come back.)
#
# It finishes inside 9.5 minutes with the defaults (one device call may run 10). Settings, from the
# environment:
#   OUT                        where the files to bring back go (the device tool sets it)
#   DRYWALLQA_PACK             training pack (default .device/pack; scripts/device/prepare.sh)
#   DRYWALLQA_WHEELS           wheels of what the machine lacks (default .device/wheels)
#   DRYWALLQA_RECIPES          training configs, space-separated, trained side by side (default: the
#                              capacity ladder; a recipe above the pack's photo size is skipped, saying so)
#   DRYWALLQA_TRAIN_MINUTES    training budget of every recipe (default 5)
#   DRYWALLQA_TRAIN_ARGS       more `drywallqa train` flags for every recipe
#   DRYWALLQA_PROFILE_SECONDS  budget of the profile, before training (default 45; 0 skips it)
#   DRYWALLQA_PROFILE_ARGS     more profile_model.py flags (the CPU rehearsal passes --quick)
#   DRYWALLQA_E2E_SECONDS      budget of the end-to-end bench, after training (default 30; 0 skips it)
#   DRYWALLQA_BENCH_SECONDS    bench budget (default 75; 0 skips the bench)
#   DRYWALLQA_BENCH_ARGS       more `drywallqa bench` flags (the CPU rehearsal passes --quick)
#   DRYWALLQA_DEADLINE_SECONDS the whole script's limit, which the bench budgets yield to (default 555)
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="${OUT:?set OUT to the folder whose files come back}"
pack="${DRYWALLQA_PACK:-.device/pack}"
wheels="${DRYWALLQA_WHEELS:-.device/wheels}"
ladder="configs/device-finetune.yaml configs/device-finetune-640.yaml configs/device-wide.yaml configs/device-lite2.yaml"
recipes="${DRYWALLQA_RECIPES:-$ladder}"
minutes="${DRYWALLQA_TRAIN_MINUTES:-5}"
train_args="${DRYWALLQA_TRAIN_ARGS:-}"
profile_seconds="${DRYWALLQA_PROFILE_SECONDS:-45}"
profile_args="${DRYWALLQA_PROFILE_ARGS:-}"
e2e_seconds="${DRYWALLQA_E2E_SECONDS:-30}"
bench_seconds="${DRYWALLQA_BENCH_SECONDS:-75}"
bench_args="${DRYWALLQA_BENCH_ARGS:-}"
deadline="${DRYWALLQA_DEADLINE_SECONDS:-555}"
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
if ! "$python" -c "import pycocotools, simplejpeg, pydantic" 2>/dev/null; then
  ls "$wheels"/*.whl >/dev/null 2>&1 || fail "pycocotools, simplejpeg or pydantic missing and no wheels in $wheels (scripts/device/prepare.sh fetches them)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/drywallqa-site "$wheels"/*.whl || fail "installing the wheels of $wheels failed"
  export PYTHONPATH="/tmp/drywallqa-site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The working tree's package, whether or not it is installed here.
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
"$python" - <<'EOF' || fail "drywallqa does not import"
import lightning, torch
import drywallqa
print(f"python ok: torch {torch.__version__}, lightning {lightning.__version__}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, CUDA {torch.version.cuda}")
else:
    print("no GPU: this is a CPU rehearsal")
EOF

compile_finetune=false
if (( profile_seconds > 0 )); then
  step "profile (${profile_seconds} s budget)"
  # shellcheck disable=SC2086
  # A compilation cannot be stopped from inside: the profile may overrun its budget by 45 s at most.
  timeout --kill-after=10 $(( profile_seconds + 45 )) "$python" scripts/device/profile_model.py --seconds "$profile_seconds" \
    --train-seconds "$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')" --json "$out/profile.json" $profile_args \
    || echo "profile stopped (exit $?)"
  if [ -f "$out/profile.json" ] && "$python" -c "import json, sys; sys.exit(not json.load(open(sys.argv[1]))['compile_training'])" "$out/profile.json"; then
    compile_finetune=true
  fi
fi

step "training for ${minutes} min each, side by side, data on the device"
pack_size="$("$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['images'].get('size') or 0)" "$pack/pack.json")"
pids=()
names=()
for recipe in $recipes; do
  name="$(basename "$recipe" .yaml)"
  size="$("$python" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['data']['image_size'])" "$recipe")"
  if (( pack_size > 0 && size > pack_size )); then
    echo "$name: skipped, it trains at $size px and the pack holds its photos at $pack_size px (docs/gpu.md)"
    continue
  fi
  extra=()
  # The profile compiled this architecture's training step: the fine-tune of the shipped model.
  [ "$name" = "device-finetune" ] && [ "$compile_finetune" = true ] && extra+=(--set trainer.compile=true)
  # A hard limit beyond the budget: a hung training must not take the bench and the results with it.
  limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 150 }')
  # shellcheck disable=SC2086  # the extra flags are split on purpose
  timeout --kill-after=20 "$limit" "$python" -m drywallqa.cli train --config "$recipe" --pack "$pack" \
    --out "$runs/$name" --max-minutes "$minutes" --set trainer.data_on_device=true --set trainer.num_workers=0 \
    --no-progress "${extra[@]}" $train_args >"$runs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
  echo "$name: pid ${pids[-1]}, ${extra[*]:-eager}, log in $name.tar"
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  rc=$?
  echo "--- ${names[$i]} exited $rc after ${SECONDS}s; the end of its log:"
  grep -v -i -E "warning|^\s*warnings\.warn|litlogger" "$runs/${names[$i]}.log" | tail -n 12
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
    --no-baselines --runtimes torch-fp32 --serve-seconds 0 --json "$out/bench-e2e.json" --markdown "$runs/bench-e2e.md" \
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
    --json "$out/bench.json" --markdown "$runs/bench.md" $bench_args
  rc=$?
  if (( rc != 0 )) && [ -f "$out/bench.json" ]; then
    echo "bench stopped (exit $rc); the report of what it measured:"
    "$python" -m drywallqa.cli bench --from-json "$out/bench.json" --json "$out/bench.json" --markdown "$runs/bench.md"
  fi
else
  step "bench skipped: ${bench_budget} s left before the ${deadline} s deadline"
fi

step "collecting"
rm -f "$runs"/bench*.md
"$python" "$root/scripts/device/collect.py" --runs "$runs" --out "$out" || fail "the files in $out break the device limits"
rm -rf "$runs"
step "done in ${SECONDS} s"
