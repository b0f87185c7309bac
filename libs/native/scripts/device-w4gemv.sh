#!/usr/bin/env bash
# On the GPU machine, one call for the W4A16 decode GEMV (ops/w4a16_gemm.cu; CublasGemm uses it when
# LMFLEET_W4A16_GEMV=1 (CUDA-core FMAs) or 2 (mma.sync inner product), default off):
#   1. device-test.sh: build, test_kernels (the GEMV forced, both inner products: m = 1..8, groups 32/64/128, padded k,
#      7B's shapes, f16/f32 out vs float64 on fresh random inputs, two launches bit-identical), test_backend with the
#      default policy, bench_decoder (its W4 tables: f16 vs fused vs gemv(fma) vs gemv(mma) at m = 1, 2, 4, 8 and per
#      linear at m = 1, with the fraction of the copy rate measured in the same run)
#   2. test_backend again with LMFLEET_W4A16_GEMV=1 and =2 (runOp + CudaDecoder on W4A16 tiny models with graphs vs CPU)
#   3. W4_ENGINE=1: the addon engine bench (engine-bench.js) on a random Llama-2-7B-shaped AutoAWQ g128 model at batch 1
#      and 16, with the GEMV off, =1 and =2 (needs .device, node_modules/node-addon-api, node_modules/node-api-headers
#      carried; ~5 min more: with the 10-minute command limit run it as a second call on the warm machine,
#      SKIP_KERNELS=1 W4_ENGINE=1)
# Logs under $OUT; a summary last.   From the repo root: bash libs/native/scripts/device-w4gemv.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
cd "$ROOT"
unset LMFLEET_W4A16_GEMV LMFLEET_W4A16_GEMV_ROWS LMFLEET_W4A16_GEMV_SPLIT
B=libs/native/build/device-test
[ "${SKIP_KERNELS:-0}" = 1 ] || {
bash libs/native/scripts/device-test.sh --layers 2 --batches 1 > "$OUT/device-test.txt" 2>&1
echo "device-test rc $?"
for mode in 1 2; do
  LMFLEET_W4A16_GEMV=$mode $B/test_backend > "$OUT/test_backend_gemv$mode.log" 2>&1
  echo "test_backend LMFLEET_W4A16_GEMV=$mode rc $?: $(grep -c PASS "$OUT/test_backend_gemv$mode.log") PASS, $(grep -c -e FAIL -e ERROR "$OUT/test_backend_gemv$mode.log") FAIL/ERROR"
done
}
if [ "${W4_ENGINE:-0}" = 1 ]; then
  source .device/bootstrap.sh
  NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  BUILD=libs/native/build/cuda
  { cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
      -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j 16; } > "$OUT/addon-build.log" 2>&1 ||
    { tail -30 "$OUT/addon-build.log"; echo "ADDON BUILD FAILED"; }
  ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
  W4MODEL=/tmp/lmf-random-7b-32-awq128
  [ -f "$W4MODEL/config.json" ] || python3 test/bench/make_random_model.py "$W4MODEL" --layers 32 --awq-group 128 \
    > "$OUT/make_w4_model.log" 2>&1 || { tail -5 "$OUT/make_w4_model.log"; echo "W4 MODEL FAILED"; }
  for mode in 0 1 2; do
    LMFLEET_W4A16_GEMV=$mode node test/bench/engine-bench.js "$ADDON" "$W4MODEL" --batches 1,16 --new 64 --prefill 0 \
      > "$OUT/engine-w4-gemv$mode.log" 2>&1
    echo "engine W4 LMFLEET_W4A16_GEMV=$mode rc $?: $(grep "addon engine batch" "$OUT/engine-w4-gemv$mode.log" | cut -d';' -f1 | tr '\n' ' ')"
  done
fi
echo "== summary =="
[ "${SKIP_KERNELS:-0}" = 1 ] && exit 0
grep -e "^== test_kernels" "$OUT/device-test.txt"
grep -e "FAIL" -e "ERROR" "$OUT/test_kernels.log" | head -10
echo "w4a16_gemv rows: $(grep -c '^w4a16_gemv.*PASS' "$OUT/test_kernels.log") PASS, $(grep '^w4a16_gemv' "$OUT/test_kernels.log" | grep -vc PASS) not; worst err f16 out $(grep '^w4a16_gemv([a-z]*) ' "$OUT/test_kernels.log" | sed 's/.* err \([^ ]*\) .*/\1/' | sort -g | tail -1), f32 out $(grep '^w4a16_gemv.*_f32out' "$OUT/test_kernels.log" | sed 's/.* err \([^ ]*\) .*/\1/' | sort -g | tail -1)"
grep -e "^== test_backend" "$OUT/device-test.txt"
sed -n '/W4A16 g128 decode/,/^$/p' "$OUT/bench_decoder.log"
sed -n '/W4A16 g128 m=1 per linear/,/^$/p' "$OUT/bench_decoder.log"
