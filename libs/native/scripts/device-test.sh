#!/usr/bin/env bash
# On the GPU machine: builds (nvcc + cuBLAS, g++ for native-cpu's CPU sources) and runs
#   src/cuda/test_kernels.cu   every CUDA kernel vs a float64 CPU reference
#   src/cuda/test_backend.cu   the CUDA backend vs the CPU backend: every op through runOp's adapters, and the
#                              fused decoder (graphs) vs the CPU decoder on tiny random models
#   src/cuda/bench_decoder.cu  a 7B-shaped layer stack: decode ms/step vs the bandwidth limit, prefill vs cuBLAS
# Logs under $OUT; a short summary last.   bash libs/native/scripts/device-test.sh [bench args...]
# Env: SKIP_KERNELS=1 (test_kernels built, not run), SKIP_BENCH=1, SKIP_TESTS=1 (build only).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
B=build/device-test
mkdir -p "$B"
ARCH=${ARCH:-sm_90}
export NVCC_FLAGS="-std=c++17 -O3 -arch=$ARCH -I src -DLMF_HAVE_CUBLAS -Xptxas -warn-spills"
export CXX_FLAGS="-std=gnu++17 -O3 -march=native -I src -I /usr/local/cuda/include"
export B
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee "$OUT/gpu.txt"
t0=$(date +%s)
CU="src/ops/*.cu src/cuda/gemm.cu src/cuda/f32_ops.cu src/cuda/backend_cuda.cu src/cuda/backend_cuda_quant.cu src/cuda/cuda_decoder.cu
    src/cuda/peer_collective.cu src/cuda/test_kernels.cu src/cuda/test_backend.cu src/cuda/bench_decoder.cu ${EXTRA_CU:-}"
CC="src/core/*.cc src/ops/*.cpu.cc src/engine/decoder.cc src/engine/kv_cache.cc"
{
  ls $CU | xargs -P 16 -I{} sh -c 'nvcc $NVCC_FLAGS -c {} -o $B/$(basename {}).o || echo "FAILED {}"'
  ls $CC | xargs -P 16 -I{} sh -c 'g++ $CXX_FLAGS -c {} -o $B/cpu_$(basename {}).o || echo "FAILED {}"'
  # the Model constructor only knows make_cpu_backend: the test supplies a switch (see test_backend.cu)
  g++ $CXX_FLAGS -Dmake_cpu_backend=lmf_test_make_backend -c src/engine/model.cc -o $B/cpu_model_test.o || echo "FAILED model.cc"
} > "$OUT/build.log" 2>&1
if grep -q FAILED "$OUT/build.log"; then cat "$OUT/build.log"; echo "BUILD FAILED"; exit 1; fi
KERNELS=$(ls $B/*.cu.o | grep -v -e test_ -e bench_ -e engine_bench -e backend_cuda -e cuda_decoder -e f32_ops -e peer_collective)
BACKEND="$B/f32_ops.cu.o $B/backend_cuda.cu.o $B/backend_cuda_quant.cu.o $B/cuda_decoder.cu.o $B/peer_collective.cu.o"
CPU=$(ls $B/cpu_*.o | grep -v cpu_model_test)
LIBS="-lcublas -lcublasLt -lcudart -lpthread"
nvcc -arch=$ARCH $KERNELS $B/cpu_error.cc.o $B/test_kernels.cu.o $LIBS -o $B/test_kernels >> "$OUT/build.log" 2>&1 &&
  nvcc -arch=$ARCH $KERNELS $B/cpu_error.cc.o $B/bench_decoder.cu.o $LIBS -o $B/bench_decoder >> "$OUT/build.log" 2>&1 &&
  nvcc -arch=$ARCH $KERNELS $BACKEND $CPU $B/cpu_model_test.o $B/test_backend.cu.o $LIBS -o $B/test_backend >> "$OUT/build.log" 2>&1 || {
  cat "$OUT/build.log"; echo "LINK FAILED"; exit 1; }
if [ -f $B/engine_bench.cu.o ]; then
  nvcc -arch=$ARCH $KERNELS $BACKEND $CPU $B/cpu_model_test.o $B/engine_bench.cu.o $LIBS -o $B/engine_bench >> "$OUT/build.log" 2>&1 ||
    { cat "$OUT/build.log"; echo "LINK FAILED (engine_bench)"; }
fi
echo "build: $(( $(date +%s) - t0 )) s"
grep -i -e "spill" "$OUT/build.log" | grep -v "0 bytes spill" | sed 's/_ZN7lmfleet//' | cut -c1-150 | head -8
[ "${SKIP_TESTS:-0}" = 1 ] && exit 0
k_rc=skipped
[ "${SKIP_KERNELS:-0}" = 1 ] || { $B/test_kernels > "$OUT/test_kernels.log" 2>&1; k_rc=$?; }
$B/test_backend > "$OUT/test_backend.log" 2>&1; b_rc=$?
[ "${SKIP_BENCH:-0}" = 1 ] || { $B/bench_decoder "$@" > "$OUT/bench_decoder.log" 2>&1; echo "bench rc $?"; }
[ "$k_rc" = skipped ] || { echo "== test_kernels (rc $k_rc): $(grep -e passed "$OUT/test_kernels.log" | tail -1) =="
  grep -e FAIL -e ERROR "$OUT/test_kernels.log" | head -20; }
echo "== test_backend (rc $b_rc) =="
grep -e "^|" -e ERROR -e passed "$OUT/test_backend.log" | grep -v -e "^|---" | tail -30
[ "${SKIP_BENCH:-0}" = 1 ] || { echo "== bench_decoder =="; grep -v "^$" "$OUT/bench_decoder.log" | tail -14; }
