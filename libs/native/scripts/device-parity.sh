#!/usr/bin/env bash
# On the GPU machine, one call: CUDA parity with transformers and the KV-cache int8/int4 path.
#   1. scripts/device-test.sh (SKIP_BENCH=1): test_kernels (every kernel vs float64, incl. head_dim 16/32 attention and
#      the int8/int4 KV store/decode/prefill cases) and test_backend (CUDA vs CPU backend; CudaDecoder vs the CPU
#      decoder, also with int8/int4 KV caches)
#   2. the addon's cuda variant with plain CMake (as device-bench.sh), in parallel with 1
#   3. test/bench/cuda-parity.js through that addon and the compiled engine (dist/, `npm run build:ts`): the golden
#      cases on cuda (logits + 32 greedy tokens; fp16 and int8 KV), and eval ppl of $PPL_MODEL with fp16/int8/int4 KV
#      (online, and calibrated from $KV_CALIB when set)
#   4. src/cuda/bench_attention.cu: one layer's decode/prefill attention with f16 vs int8 vs int4 caches
# From a root holding libs/native, dist/, test/ and node_modules/{@huggingface,node-addon-api,node-api-headers}:
#   source .device/bootstrap.sh; PPL_MODEL=dir KV_CALIB=dir bash libs/native/scripts/device-parity.sh
# Env: GOLDEN=dir (fixtures folder), MAKE_GOLDENS=case,... (make them here first), SKIP_DEVICE_TEST=1 (steps 1 and 4 off),
#      ADDON_JOBS=n
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
cd "$ROOT"
t0=$(date +%s)
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda-cmake
( cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j ${ADDON_JOBS:-8} ) > "$OUT/addon-build.log" 2>&1 &
ADDON_PID=$!
# MAKE_GOLDENS=case,case: make those golden cases with transformers here (test/fixtures/golden/make_golden.py), send
# them back as $OUT/goldens.tar and check the cuda engine against them (instead of $GOLDEN)
if [ -n "${MAKE_GOLDENS:-}" ]; then
  GOLDEN=/tmp/lmf-goldens; rm -rf $GOLDEN; mkdir -p $GOLDEN
  PYTHONUNBUFFERED=1 python3 test/fixtures/golden/make_golden.py --out $GOLDEN --cases "$MAKE_GOLDENS" > "$OUT/make_golden.log" 2>&1
  echo "make_golden rc $? ($(( $(date +%s) - t0 )) s)"; cat "$OUT/make_golden.log" | tail -5
  tar -cf "$OUT/goldens.tar" -C $GOLDEN .
fi
if [ "${SKIP_DEVICE_TEST:-0}" != 1 ]; then
SKIP_BENCH=1 EXTRA_CU=src/cuda/bench_attention.cu bash libs/native/scripts/device-test.sh > "$OUT/device-test.txt" 2>&1
echo "device-test rc $? ($(( $(date +%s) - t0 )) s)"
# 4. the KV-cache attention micro-benchmark (f16 vs int8 vs int4 caches), kernels only
DT=libs/native/build/device-test
KOBJ=$(ls $DT/*.cu.o | grep -v -e test_ -e bench_ -e engine_bench -e backend_cuda -e cuda_decoder -e f32_ops)
if nvcc -arch=sm_90 $KOBJ $DT/cpu_error.cc.o $DT/bench_attention.cu.o -lcublas -lcublasLt -lcudart -lpthread -o $DT/bench_attention >> "$OUT/build.log" 2>&1; then
  $DT/bench_attention > "$OUT/bench_attention.log" 2>&1; echo "bench_attention rc $?"
else
  echo "bench_attention: LINK FAILED"
fi
fi
wait $ADDON_PID; arc=$?
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
echo "addon build rc $arc: ${ADDON:-none} ($(( $(date +%s) - t0 )) s)"
[ -n "$ADDON" ] || tail -30 "$OUT/addon-build.log"
if [ -n "$ADDON" ]; then
  mkdir -p libs/native/build/cuda/Release && cp "$ADDON" libs/native/build/cuda/Release/
  LMFLEET_NATIVE_DIR="$ROOT/libs/native" node test/bench/cuda-parity.js ${PPL_MODEL:+--ppl "$PPL_MODEL"} \
    ${KV_CALIB:+--kv-calib-dir "$KV_CALIB"} ${GOLDEN:+--golden "$GOLDEN"} > "$OUT/parity.log" 2>&1
  echo "cuda-parity rc $? ($(( $(date +%s) - t0 )) s)"
fi
echo "== device-test =="
grep -v "^|---" "$OUT/device-test.txt" | grep -e "==" -e FAIL -e ERROR -e "^| decoder" -e "passed" | head -30
grep "^| " "$OUT/test_kernels.log" 2>/dev/null | grep -e " int[48]" -e " d16" -e " d32" -e "h32/2" -e "h12/1" -e "h11/1" -e FAIL | head -40
echo "== cuda parity =="
grep -v PARITY_JSON "$OUT/parity.log" 2>/dev/null | tail -20
echo "== bench_attention =="
cat "$OUT/bench_attention.log" 2>/dev/null
