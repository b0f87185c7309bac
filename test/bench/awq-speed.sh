#!/usr/bin/env bash
# On the GPU machine: speed of calibrate + auto_awq on a random Llama-2-7B-shaped model with LAYERS layers
# (default 1; seconds per layer x 32 = the 7B estimate), runOp on the CUDA backend.
#   1. builds the addon's cuda variant with plain CMake (as device-bench.sh) into libs/native/build/cuda/Release
#   2. writes the random model (test/bench/make_random_model.py --layers LAYERS)
#   3. node test/bench/awq-speed.js DIST MODEL --backend cuda --samples SAMPLES (the compiled engine in DIST)
# From the repo root, carrying .device node_modules/node-addon-api node_modules/node-api-headers
# node_modules/@huggingface and a compiled engine (npm run build:ts) at DIST:
#   source .device/bootstrap.sh; DIST=dist bash test/bench/awq-speed.sh
set -uo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${OUT:-/tmp/lmf-awq-speed}
mkdir -p "$OUT"
LAYERS=${LAYERS:-1}
SAMPLES=${SAMPLES:-16}
DIST=${DIST:-dist}
BENCH=${BENCH:-$ROOT/test/bench/awq-speed.js}
MODEL=/tmp/lmf-random-7b-$LAYERS
cd "$ROOT"
t0=$(date +%s)
BUILD=libs/native/build/cuda
if ! ls $BUILD/Release/*.node > /dev/null 2>&1; then
  { cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
      -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
      -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" &&
    cmake --build $BUILD -j 16; } > "$OUT/addon-build.log" 2>&1 || { tail -40 "$OUT/addon-build.log"; echo "ADDON BUILD FAILED"; exit 1; }
  ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
  mkdir -p $BUILD/Release && { [ "$ADDON" -ef $BUILD/Release/lmfleet_native.node ] || cp "$ADDON" $BUILD/Release/; }
fi
echo "addon: $(ls $BUILD/Release/*.node) ($(( $(date +%s) - t0 )) s)"
t0=$(date +%s)
[ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers "$LAYERS" > "$OUT/make_model.log" 2>&1 ||
  { cat "$OUT/make_model.log"; exit 1; }
echo "model: $MODEL ($(( $(date +%s) - t0 )) s)"
node "$BENCH" "$DIST" "$MODEL" --backend cuda --samples "$SAMPLES" --seqlen 2048 > "$OUT/awq-speed.log" 2> "$OUT/awq-speed.err"
echo "awq-speed rc $?"; tail -5 "$OUT/awq-speed.err"; grep -v AWQ_SPEED_JSON "$OUT/awq-speed.log" | tail -8
