#!/usr/bin/env bash
# On the GPU machine, one call (~170-200 s without the fp16 engine run) for the W4A16 decode kernels (ops/w4a16_gemm.cu), in this order:
#   1. in parallel: the addon's cuda build (CMake, as device-bench.sh), the test/bench binaries (device-test.sh's build),
#      the two random Llama-2-7B-shaped models (fp16, and AutoAWQ W4 g128) written to /tmp
#   2. test_kernels with LMF_TEST_ONLY=w4 (every W4A16 kernel variant vs float64 on fresh random inputs)
#   3. bench_decoder's W4 tables only (LMF_BENCH_W4_ONLY=1): graph-timed f16 vs fused vs GEMV variants per 7B layer,
#      the plain-read bounds, per linear at m = 1
#   4. the addon engine (engine-bench.js): W4 with the default policy and with each W4 env in W4_ENVS, then fp16
#      (decode batches 1/16/64, 128-token prompts, NEW new tokens; no prefill), then w4_table.py per W4 run
#   (between 3 and 4: test_backend with the default policy and with TB_ENV: CudaDecoder W4 vs the CPU decoder, graphs;
#    3n, with NCU=1: Nsight Compute on the m = 1 W4 kernels of one 7B linear (NCU_SHAPE, default gate_up 22016 x 4096):
#    stream read, fused, gemv read u4, gemv(mma_qz), gemv(mma_x) T2/T4/T8 — one launch each from bench_decoder's
#    LMF_BENCH_W4_NCU=1 driver, filtered by -k and --launch-count 8, --clock-control none, a fixed metric list (DRAM
#    throughput, shared-load wavefronts / bank conflicts, stall reasons, issued IPC, occupancy, registers) -> $OUT/ncu_raw.csv
#    and the compact $OUT/ncu_table.md (scripts/ncu_table.py); if that list is refused, the same launches with ncu's
#    sections (SpeedOfLight, MemoryWorkloadAnalysis tables, WarpStateStats, Occupancy, LaunchStats) -> ncu_sections.txt.
#    NCU=1 adds ~40-90 s (7 launches x ~25 replay passes each plus ncu's start; capped at NCU_TIMEOUT, default 150 s);
#    3b: the fp16 layer stack in C++, bench_decoder --prefill 128, a same-run fp16 decode baseline)
# Each step is time-boxed so the logs of the finished steps come back whatever happens, and every timeout is also cut
# to what is left of BUDGET (default 540 s from the script's start, 15 s kept for the summary): with NCU=1 and the
# engine runs the later steps (engine W4 envs, then fp16) are the ones that shrink or are skipped. Logs under $OUT;
# summary last. Everything but the fp16 engine run, with Nsight Compute:
#   SKIP_FP16=1 NCU=1 bash libs/native/scripts/device-w4k.sh
# From the repo root (carrying .device node_modules/node-addon-api node_modules/node-api-headers):
#   source .device/bootstrap.sh; bash libs/native/scripts/device-w4k.sh
# The lead's reproduction of the W4 vs fp16 engine table (steps 1 and 4 only; give the call 600 s):
#   ENGINE_ONLY=1 bash libs/native/scripts/device-w4k.sh      -> $OUT/engine-w4-default.md (the default policy: MmaX
#   for m <= 8, the fused kernel above) and engine-w4-env1.md (LMFLEET_W4A16_GEMV=0: the fused kernel for m <= 8 too),
#   each a w4_table.py table: fp16 vs W4A16 ms/step in this run
# Env: ENGINE_ONLY=1 (no tests/bench); TB_ENV (space-separated test_backend runs after the default one, each VAR=V[,VAR=V],
#   each followed by test_kernels' CublasGemm rows (LMF_TEST_ONLY=w4entry) with that env; default "LMFLEET_W4A16_GEMV=0":
#   the old fused kernel for m <= 8 through CublasGemm in the decoder graphs, an A/B against the default MmaX);
#   W4_ENVS (space-separated engine runs, each VAR=V[,VAR=V]; default "LMFLEET_W4A16_GEMV=0": the fused kernel for
#   m <= 8 beside the default policy's MmaX); NCU=1, NCU_SHAPE (gate_up|down|qkv|o),
#   NCU_TIMEOUT; TK_ONLY (test_kernels' LMF_TEST_ONLY, default w4; empty: every kernel); TK_ENV (space-separated
#   VAR=V[,VAR=V] sets: test_kernels again with each); PREFILL (engine prefill tokens,
#   default 0: none); EB_EXTRA (more engine-bench.js arguments, e.g. "--ab LMFLEET_PDL=gemv"); BUDGET (s, default 540); SKIP_FP16=1 (no fp16 model/run); FP16_TIMEOUT (s, default 300: loading the 12.5 GB fp16
#   model took > 60 s in both calls that tried it, so a call under ~400 s gets no fp16 engine row; then the fp16 C++
#   layer stack of step 3b is the same-run baseline); NEW (new tokens, default 64); SKIP_ENGINE=1; SKIP_BACKEND=1; COMMIT
set -uo pipefail
BUDGET=${BUDGET:-540} TB_KEEP=15
source "$(dirname "$0")/device-common.sh"  # cd to the repo root; OUT, el, tb
NEW=${NEW:-64}
W4_ENVS=${W4_ENVS-"LMFLEET_W4A16_GEMV=0"}  # set and empty: no extra W4 runs
MODEL=/tmp/lmf-random-7b-32
W4MODEL=/tmp/lmf-random-7b-32-awq128
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
B=libs/native/build/device-test
unset LMFLEET_W4A16_GEMV LMFLEET_W4A16_GEMV_ROWS LMFLEET_W4A16_GEMV_SPLIT LMFLEET_W4A16_GEMV_UNROLL LMFLEET_W4A16_GEMV_T LMFLEET_W4A16_WARPS
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
gpu_log_start

if [ "${SKIP_ENGINE:-0}" != 1 ]; then
  { cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
      -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j 8; } > "$OUT/addon-build.log" 2>&1 &
  ADDON_PID=$!
  { [ -f "$W4MODEL/config.json" ] || python3 test/bench/make_random_model.py "$W4MODEL" --layers 32 --awq-group 128
    [ "${SKIP_FP16:-0}" = 1 ] || [ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers 32; } \
    > "$OUT/make_models.log" 2>&1 &
  MODELS_PID=$!
fi
if [ "${ENGINE_ONLY:-0}" != 1 ]; then
SKIP_TESTS=1 bash libs/native/scripts/device-test.sh > "$OUT/device-test-build.txt" 2>&1
echo "test build rc $? ($(el))"; grep -e FAILED -e "spill" "$OUT/device-test-build.txt" | head -5

LMF_TEST_ONLY=${TK_ONLY-w4} timeout $(tb 90) $B/test_kernels > "$OUT/test_kernels.log" 2>&1
echo "test_kernels (${TK_ONLY-w4}) rc $? ($(el)): $(tail -1 "$OUT/test_kernels.log")"
i=0
for e in ${TK_ENV:-}; do  # the same test_kernels run again with each env set (VAR=V[,VAR=V])
  i=$((i + 1))
  env ${e//,/ } LMF_TEST_ONLY=${TK_ONLY-w4} timeout $(tb 90) $B/test_kernels > "$OUT/test_kernels_tk$i.log" 2>&1
  echo "test_kernels (${TK_ONLY-w4}) $e rc $? ($(el)): $(tail -1 "$OUT/test_kernels_tk$i.log")"
done
LMF_BENCH_W4_ONLY=1 timeout $(tb 75) $B/bench_decoder > "$OUT/bench_w4.log" 2>&1
echo "bench_decoder (w4) rc $? ($(el))"

if [ "${SKIP_BACKEND:-0}" != 1 ]; then
  timeout $(tb 40) $B/test_backend > "$OUT/test_backend.log" 2>&1
  echo "test_backend (default policy) rc $? ($(el)): $(tail -1 "$OUT/test_backend.log")"
  TB_ENV=${TB_ENV:-"LMFLEET_W4A16_GEMV=0"}
  i=0
  for e in $TB_ENV; do
    i=$((i + 1))
    env ${e//,/ } timeout $(tb 40) $B/test_backend > "$OUT/test_backend_env$i.log" 2>&1
    echo "test_backend $e rc $? ($(el)): $(tail -1 "$OUT/test_backend_env$i.log")"
    # test_kernels' rows through CublasGemm with the same env (GEMV=0: its m = 5 row goes to the fused kernel; a few seconds)
    env ${e//,/ } LMF_TEST_ONLY=w4entry timeout $(tb 30) $B/test_kernels > "$OUT/test_kernels_env$i.log" 2>&1
    echo "test_kernels (w4) $e rc $? ($(el)): $(grep 'CublasGemm' "$OUT/test_kernels_env$i.log" | tr -s ' ' | cut -c1-90 | tr '\n' ';')"
  done
fi
# 3n. Nsight Compute on one linear's m = 1 kernels (see the header)
if [ "${NCU:-0}" = 1 ]; then
  ncu_w4 "${NCU_SHAPE:-gate_up}" 1 ""
fi
# 3b. the fp16 layer stack in C++ (bench_decoder: graphs, our kernels + cuBLAS, no scheduler): an fp16 decode baseline in
# this run even if the fp16 engine run below does not finish
LMF_BENCH_W4=0 timeout $(tb 40) $B/bench_decoder --prefill 128 > "$OUT/bench_fp16_stack.log" 2>&1
echo "bench_decoder fp16 stack rc $? ($(el)): $(grep '^| batch' "$OUT/bench_fp16_stack.log" | cut -d'|' -f2,4 | tr '\n' ' ')"
fi  # ENGINE_ONLY

if [ "${SKIP_ENGINE:-0}" != 1 ]; then
  wait $ADDON_PID; echo "addon build rc $? ($(el))"
  wait $MODELS_PID; echo "models rc $? ($(el)): $(grep wrote "$OUT/make_models.log" | tr '\n' ' ')"
  ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
  [ -n "$ADDON" ] || tail -20 "$OUT/addon-build.log"
  EB="--batches 1,16,64 --new $NEW --prefill ${PREFILL:-0} ${EB_EXTRA:-}"
  timeout $(tb 45) node test/bench/engine-bench.js "$ADDON" "$W4MODEL" $EB > "$OUT/engine-w4-default.log" 2>&1
  echo "engine W4 default policy rc $? ($(el))"
  i=0
  for e in $W4_ENVS; do
    i=$((i + 1))
    timeout $(tb 45) env ${e//,/ } node test/bench/engine-bench.js "$ADDON" "$W4MODEL" $EB > "$OUT/engine-w4-env$i.log" 2>&1
    echo "engine W4 $e rc $? ($(el))"
  done
  if [ "${SKIP_FP16:-0}" != 1 ]; then  # last: loading 12.5 GB of fp16 safetensors took > 60 s once (page cache busy)
    timeout $(tb "${FP16_TIMEOUT:-300}") node test/bench/engine-bench.js "$ADDON" "$MODEL" $EB > "$OUT/engine-fp16.log" 2>&1
    echo "engine fp16 rc $? ($(el))"
  fi
fi

echo "== summary ($(el)) =="
gpu_log_summary
grep -e FAIL -e ERROR "$OUT/test_kernels.log" 2>/dev/null | head -8
echo "w4 rows: $(grep -c '^w4a16.*PASS' "$OUT/test_kernels.log") PASS, $(grep '^w4a16' "$OUT/test_kernels.log" | grep -vc PASS) not"
grep -e "W4A16" "$OUT/test_backend.log" 2>/dev/null | cut -c1-160
for f in "$OUT"/engine-*.log; do echo "-- $(basename "$f"): $(grep -e "addon engine .*batch" -e "addon engine prefill" "$f" | cut -d';' -f1 | sed 's/addon engine //' | tr '\n' ' ')"; done
sed -n '/graph-timed, one 7B layer.s 4 linears/,$p' "$OUT/bench_w4.log" | grep -v '^$' | grep -v "^|---" | cut -c1-300
[ -s "$OUT/ncu_table.md" ] && cat "$OUT/ncu_table.md"
[ -s "$OUT/ncu_sections.txt" ] && grep -e "w4a16\|stream_read" -e "Duration" -e "DRAM Throughput" -e "Memory Throughput" \
  -e "Stall" -e "Achieved Occupancy" -e "Registers Per" -e "Issued Ipc" -e "Shared Load" -e "Bank" "$OUT/ncu_sections.txt" | cut -c1-160 | head -120
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
if grep -q ADDON_JSON "$OUT/engine-fp16.log" 2>/dev/null; then
  for f in "$OUT"/engine-w4-*.log; do
    echo "-- $(basename "$f")"
    python3 test/bench/w4_table.py "$OUT/engine-fp16.log" "$f" --card "$CARD" --commit "${COMMIT:-unknown}" 2>&1 | grep "^| decode" > "$OUT/$(basename "$f" .log).md"
    cat "$OUT/$(basename "$f" .log).md"
  done
fi
