#!/usr/bin/env bash
# On the GPU machine: the engine benchmark of the CUDA backend against transformers on the same model.
#   1. builds the addon's cuda variant with plain CMake (cmake-js's own dependencies don't travel; the CMake
#      project is the same one build.js drives): libs/native/build/cuda/lmfleet_native.node
#   2. writes a random Llama-2-7B-shaped fp16 model (test/bench/make_random_model.py) into /tmp
#   3. test/bench/engine-bench.js: the addon's Model + Engine (scheduler, batch thread, CUDA decoder with graphs),
#      B requests of 128 random prompt tokens + 128 greedy new tokens, B = 1/16/64; a 2048-token prefill
#   4. (ENGINE_CPP=1) src/cuda/engine_bench.cu: the same step loop in C++ without scheduler/JS, GPU sampling
#   5. test/bench/hf_baseline.py: transformers' eager generate on the same directory, same shapes
#   6. one table (test/bench/bench_table.py), also $OUT/RESULTS.md
# From the repo root, carrying .device node_modules/node-addon-api node_modules/node-api-headers:
#   source .device/bootstrap.sh; bash libs/native/scripts/device-bench.sh [--layers N]
# Env: ENGINE_CPP=1 (step 4), SKIP_HF=1 / HF_TIMEOUT=<s> (step 5), COMMIT=<sha> (the table's header)
#      W4=1: also a random AutoAWQ W4 g128 checkpoint of the same shape (make_random_model.py --awq-group 128), the
#      same engine bench on it, and test/bench/w4_table.py: fp16 vs W4A16 in this run ($OUT/W4.md)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
LAYERS=32
[ "${1:-}" = "--layers" ] && LAYERS=$2
MODEL=${MODEL:-/tmp/lmf-random-7b-$LAYERS}
export PYTHONUNBUFFERED=1
cd "$ROOT"
t0=$(date +%s)
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
{ cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" &&
  cmake --build $BUILD -j 16; } > "$OUT/addon-build.log" 2>&1 || { tail -40 "$OUT/addon-build.log"; echo "ADDON BUILD FAILED"; exit 1; }
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
echo "addon: $ADDON ($(( $(date +%s) - t0 )) s)"
t0=$(date +%s)
[ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers "$LAYERS" > "$OUT/make_model.log" 2>&1 ||
  { cat "$OUT/make_model.log"; exit 1; }
echo "model: $(tail -1 "$OUT/make_model.log" 2>/dev/null) ($(( $(date +%s) - t0 )) s)"
node test/bench/engine-bench.js "$ADDON" "$MODEL" > "$OUT/engine.log" 2>&1
echo "engine-bench rc $?"; grep -v _JSON "$OUT/engine.log" | tail -8
if [ "${W4:-0}" = 1 ]; then
  W4MODEL=${W4MODEL:-/tmp/lmf-random-7b-$LAYERS-awq128}
  t0=$(date +%s)
  [ -f "$W4MODEL/config.json" ] || python3 test/bench/make_random_model.py "$W4MODEL" --layers "$LAYERS" --awq-group 128 \
    > "$OUT/make_w4_model.log" 2>&1 || { cat "$OUT/make_w4_model.log"; exit 1; }
  echo "W4 model: $(tail -1 "$OUT/make_w4_model.log" 2>/dev/null) ($(( $(date +%s) - t0 )) s)"
  node test/bench/engine-bench.js "$ADDON" "$W4MODEL" > "$OUT/engine-w4.log" 2>&1
  echo "engine-bench W4 rc $?"; grep -v _JSON "$OUT/engine-w4.log" | tail -8
  CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  python3 test/bench/w4_table.py "$OUT/engine.log" "$OUT/engine-w4.log" --card "$CARD" --commit "${COMMIT:-unknown}" | tee "$OUT/W4.md"
fi
if [ "${ENGINE_CPP:-0}" = 1 ]; then
  SKIP_TESTS=1 EXTRA_CU=src/cuda/engine_bench.cu bash libs/native/scripts/device-test.sh > "$OUT/cpp-build.log" 2>&1
  python3 test/bench/safetensors_manifest.py "$MODEL" > "$OUT/manifest.txt"
  libs/native/build/device-test/engine_bench "$OUT/manifest.txt" >> "$OUT/engine.log" 2>&1
  echo "engine_bench (C++) rc $?"; grep "^engine " "$OUT/engine.log" | tail -5
fi
# HF_TIMEOUT=<s>: cap transformers' run (a short device budget); SKIP_HF=1: leave it out (the table's limit and
# transformers columns are then empty)
if [ "${SKIP_HF:-0}" = 1 ]; then : > "$OUT/hf.log"; else
  timeout "${HF_TIMEOUT:-36000}" python3 test/bench/hf_baseline.py "$MODEL" --reps 2 > "$OUT/hf.log" 2>&1
  echo "hf_baseline rc $?"
fi; grep "^transformers" "$OUT/hf.log" | tail -6
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
python3 test/bench/bench_table.py "$OUT/engine.log" "$OUT/hf.log" --card "$CARD" --commit "${COMMIT:-unknown}" | tee "$OUT/RESULTS.md"
