#!/usr/bin/env bash
# On the GPU machine: builds the standalone CUDA kernel tests (src/cuda/test_kernels.cu) and the decoder
# micro-benchmark (src/cuda/bench_decoder.cu) with nvcc + cuBLAS, runs both, logs under $OUT.
#   bash libs/native/scripts/device-test.sh [bench args...]      (ARCH=sm_90 by default)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
B=build/device-test
mkdir -p "$B"
ARCH=${ARCH:-sm_90}
export NVCC_FLAGS="-std=c++17 -O3 -arch=$ARCH -I src -DLMF_HAVE_CUBLAS -Xptxas -warn-spills"
export B
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/gpu.txt"
t0=$(date +%s)
ls src/ops/*.cu src/cuda/gemm.cu src/cuda/test_kernels.cu src/cuda/bench_decoder.cu src/core/error.cc |
  xargs -P 16 -I{} sh -c 'nvcc $NVCC_FLAGS -x cu -c {} -o $B/$(basename {}).o' > "$OUT/build.log" 2>&1 || {
  cat "$OUT/build.log"; echo "BUILD FAILED"; exit 1; }
OPS=$(ls $B/*.o | grep -v -e test_kernels -e bench_decoder)
nvcc -arch=$ARCH $OPS $B/test_kernels.cu.o -lcublas -o $B/test_kernels >> "$OUT/build.log" 2>&1 &&
  nvcc -arch=$ARCH $OPS $B/bench_decoder.cu.o -lcublas -o $B/bench_decoder >> "$OUT/build.log" 2>&1 || {
  cat "$OUT/build.log"; echo "LINK FAILED"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -i -e spill -e warning "$OUT/build.log" | grep -v "0 bytes spill" | head -20
$B/test_kernels > "$OUT/test_kernels.log" 2>&1
test_rc=$?
$B/bench_decoder "$@" > "$OUT/bench_decoder.log" 2>&1
bench_rc=$?
echo "== kernel tests (rc $test_rc) =="
sed -n '/^| op /,$p' "$OUT/test_kernels.log" | grep -v "| PASS |" || true
grep -e "^seed" -e "passed" -e ERROR "$OUT/test_kernels.log"
echo "== decoder bench (rc $bench_rc) =="
grep -v "^$" "$OUT/bench_decoder.log" | tail -20
