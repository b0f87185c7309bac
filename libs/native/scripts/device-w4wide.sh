#!/usr/bin/env bash
# On the GPU machine, one call for the wide W4A16 kernel (batched decode, ops/w4a16_gemm.cu `w4a16_wide_kernel`):
#   1. device-engine-ab.sh with RUNS (default: the W4 engine at batches 16 / 32 / 64 with LMFLEET_W4A16_WIDE auto / 0 / 4 in one
#      process, then fp16 at the same batches; the fp16 C++ layer stack before and after), its budget ENGINE_BUDGET
#      (default 430 s)
#   2. test_kernels' W4 rows (every wide variant vs float64, two launches bit-identical); test_backend with the default
#      (auto) and with LMFLEET_W4A16_WIDE=0
#   3. bench_decoder's batched-decode table (f16 vs fused vs wide variants per linear and per layer, m = 9..128)
#   4. with NCU=1, Nsight Compute at NCU_M rows (default 64) on each shape in NCU_SHAPES (default "o down")
#   source .device/bootstrap.sh; bash libs/native/scripts/device-w4wide.sh
# Env: RUNS, ENGINE_BUDGET, NCU, NCU_M, NCU_SHAPES, BUDGET (s, default 580). Logs under $OUT; summary last.
set -uo pipefail
BUDGET=${BUDGET:-580} TB_KEEP=5
source "$(dirname "$0")/device-common.sh"  # cd to the repo root; OUT, el, tb
B=libs/native/build/device-test
RUNS=${RUNS-"w4 --batches 16,32,64 --new 64 --ab LMFLEET_W4A16_WIDE=0;LMFLEET_W4A16_WIDE=4|fp16 --batches 16,32,64 --new 64"}
RUNS="$RUNS" BUDGET=${ENGINE_BUDGET:-430} bash libs/native/scripts/device-engine-ab.sh > "$OUT/engine-ab.txt" 2>&1
echo "engine A/B rc $? ($(el))"
LMF_TEST_ONLY=w4 timeout $(tb 150) $B/test_kernels > "$OUT/test_kernels_w4.log" 2>&1
echo "test_kernels (w4) rc $? ($(el)): $(tail -1 "$OUT/test_kernels_w4.log")"
grep -e FAIL "$OUT/test_kernels_w4.log" | head -5
for v in "" 0; do  # the decoder vs the CPU decoder with the default (auto: the wide kernel at 9+ rows), then without it
  LMFLEET_W4A16_WIDE=$v timeout $(tb 60) $B/test_backend > "$OUT/test_backend_wide$v.log" 2>&1
  echo "test_backend LMFLEET_W4A16_WIDE=${v:-auto} rc $? ($(el)): $(head -1 "$OUT/test_backend_wide$v.log") $(tail -1 "$OUT/test_backend_wide$v.log")"
  grep FAIL "$OUT/test_backend_wide$v.log" | cut -c1-400  # the failing rows themselves (the log may not come back)
done
LMF_BENCH_W4_ONLY=1 LMF_BENCH_W4_WIDE_ONLY=1 timeout $(tb 120) $B/bench_decoder > "$OUT/bench_w4_wide.log" 2>&1
echo "bench_decoder (w4 wide) rc $? ($(el))"
if [ "${NCU:-0}" = 1 ]; then
  for shape in ${NCU_SHAPES:-o down}; do
    ncu_w4 "$shape" "${NCU_M:-64}" "-$shape"
    grep -e "^| fused" -e "^| wide" "$OUT/ncu_table-$shape.md" 2> /dev/null | cut -d'|' -f1-4,6-10,17-18,23,26
  done
fi
grep -e "batched decode" -e "^| m=" "$OUT/bench_w4_wide.log" | grep -e "layer" -e "batched" | cut -c1-200
cat "$OUT/engine-ab.txt"
