#!/usr/bin/env bash
# On the GPU machine, one call: the AWQ session's kernels and auto_awq on a random Llama-2-7B-shaped model.
#   1. at once: the addon's cuda variant (plain CMake, as device-bench.sh), test_kernels.cu's object, and the random
#      model with LAYERS layers (test/bench/make_random_model.py; every layer has the 7B's shape)
#   2. test_kernels linked against the addon build's kernel objects (every kernel vs its float64 reference; the AWQ
#      rows: awq_fake_quant, channel_stats, awq_clip_search, sq_err; SKIP_KERNELS=1 leaves it out), then
#      test/bench/awq-session-parity.js: the session's f32 attention op vs attention_fast (f16 tensor cores) on layer 0
#   3. test/bench/awq-speed.js: calibrate SAMPLES x 2048 tokens of cmake-docs, then auto_awq (scale + clip search on
#      8 samples) through the native session on the cuda backend; per stage wall times and the 7B extrapolation
#      (layer work x 32 / LAYERS, setup and write scaled by weight bytes)
# From the repo root, carrying .device node_modules/node-addon-api node_modules/node-api-headers
# node_modules/@huggingface and a compiled engine (npm run build:ts) at DIST:
#   source .device/bootstrap.sh; bash libs/native/scripts/device-awq.sh
# Env: LAYERS (default 3), SAMPLES (128), MODES (awq; awq,rtn adds round-to-nearest), BENCH_TIMEOUT (s; default:
# what is left of 285 s since the start, for a 300 s device call)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
LAYERS=${LAYERS:-3}
SAMPLES=${SAMPLES:-128}
DIST=${DIST:-dist}
MODEL=/tmp/lmf-random-7b-$LAYERS
export PYTHONUNBUFFERED=1
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
t0=$(date +%s)
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
{ cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 &&
  cmake --build $BUILD -j 14; } > "$OUT/addon-build.log" 2>&1 &
P_ADDON=$!
TK=/tmp/lmf-test-kernels
mkdir -p $TK
if [ "${SKIP_KERNELS:-0}" = 1 ]; then (exit 1) & else
  "$NVCC" -std=c++17 -O3 -arch=sm_90 -I libs/native/src -DLMF_HAVE_CUBLAS -c libs/native/src/cuda/test_kernels.cu -o $TK/test_kernels.o \
    > "$OUT/test-kernels-build.log" 2>&1 &
fi
P_TK=$!
{ [ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers "$LAYERS"; } > "$OUT/make_model.log" 2>&1 &
P_MODEL=$!
wait $P_ADDON || { tail -40 "$OUT/addon-build.log"; echo "ADDON BUILD FAILED"; exit 1; }
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
mkdir -p $BUILD/Release && { [ "$ADDON" -ef $BUILD/Release/lmfleet_native.node ] || cp "$ADDON" $BUILD/Release/; }
echo "addon: $ADDON ($(( $(date +%s) - t0 )) s)"
wait $P_MODEL || { tail -20 "$OUT/make_model.log"; echo "MODEL FAILED"; exit 1; }
echo "model: $MODEL ($(( $(date +%s) - t0 )) s since start)"
if wait $P_TK; then
  OBJ=$BUILD/CMakeFiles/lmfleet_native.dir/src
  "$NVCC" -arch=sm_90 $TK/test_kernels.o $OBJ/ops/*.cu.o $OBJ/cuda/gemm.cu.o $OBJ/core/error.cc.o -lcublas -lcudart -lpthread \
    -o $TK/test_kernels >> "$OUT/test-kernels-build.log" 2>&1 &&
    { timeout 40 $TK/test_kernels > "$OUT/test_kernels.log" 2>&1; echo "test_kernels rc $? ($(( $(date +%s) - t0 )) s since start)"; } ||
    { tail -20 "$OUT/test-kernels-build.log"; echo "test_kernels LINK FAILED"; }
  grep -e passed "$OUT/test_kernels.log" | tail -1
  grep -e FAIL -e ERROR "$OUT/test_kernels.log" | head -10
  grep -e awq_clip_search -e sq_err -e awq_fake_quant -e channel_stats "$OUT/test_kernels.log" | head -24
elif [ "${SKIP_KERNELS:-0}" = 1 ]; then
  echo "test_kernels: skipped (SKIP_KERNELS=1)"
else
  tail -20 "$OUT/test-kernels-build.log"; echo "test_kernels BUILD FAILED"
fi
# the session's two attention paths on layer 0 (f32 op vs attention_fast)
timeout 60 node test/bench/awq-session-parity.js "$DIST" "$MODEL" --backend cuda > "$OUT/parity.log" 2>&1
echo "parity rc $? ($(( $(date +%s) - t0 )) s since start)"; tail -6 "$OUT/parity.log"
BT=${BENCH_TIMEOUT:-$(( 285 - ($(date +%s) - t0) ))}
echo "awq-speed: up to $BT s"
timeout "$BT" node test/bench/awq-speed.js "$DIST" "$MODEL" --backend cuda --samples "$SAMPLES" --seqlen 2048 \
  --modes "${MODES:-awq}" --work /tmp/lmf-awq-speed > "$OUT/awq-speed.log" 2> "$OUT/awq-speed.err"
echo "awq-speed rc $? ($(( $(date +%s) - t0 )) s since start)"
tail -12 "$OUT/awq-speed.err"
grep -v AWQ_SPEED_JSON "$OUT/awq-speed.log" | tail -8
grep AWQ_SPEED_JSON "$OUT/awq-speed.log" | cut -c1-1500
