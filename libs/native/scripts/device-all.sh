#!/usr/bin/env bash
# On the GPU machine, one call for the engine's evidence (issue 3): build, kernel tests, golden fixtures, CUDA parity,
# the engine benchmark and transformers beside it. Stages run in parallel where they do not share the GPU's timing:
#   1. the addon's cuda variant (plain CMake, as device-bench.sh) and device-test.sh's build (test_kernels +
#      test_backend; SKIP_TESTS=1: not built) in parallel, while the GPU makes the random 7B-shaped fp16 model
#      (make_random_model.py) and, with MAKE_GOLDENS=case,..., those golden cases (make_golden.py) next to copies of
#      the committed ones (sent back as $OUT/goldens.tar)
#   2. test_kernels, test_backend (every kernel vs float64; the CUDA backend and decoder vs the CPU ones)
#   3. test/bench/cuda-parity.js on every golden case through the addon and the compiled engine (dist/, from
#      `npm run build:ts`; SKIP_PARITY=1: off)
#   4. test/bench/engine-bench.js, fp16, batch 1/16/64 (128-token prompts, 128 new) + a 2048-token prefill;
#      AB=1: first the same decode runs with LMFLEET_GEMM_TUNE=0 LMFLEET_PDL=0 in the same process (cuBLAS's default
#      GEMMs, plain GEMV launches: the engine before both), engine-bench --ab; GEMM_TUNE=1: the measured runs with
#      LMFLEET_GEMM_TUNE=1 (per-shape GEMM tuning is opt-in; the f3237a7 run that RESULTS.md reports had it on)
#   5. test/bench/hf_baseline.py (transformers generate on the same directory) with each HF_ATTN implementation
#      (default sdpa,eager), capped at the time left before DEADLINE_S (default 170 s after the start); SKIP_HF=1: off
#   6. test/bench/bench_table.py: one table, ours vs each peer ($OUT/RESULTS.md)
# Logs are written under $LOGS and packed into $OUT/logs.tar after every stage (few files come back from $OUT).
# From a root holding libs/native, dist/, test/ and node_modules/{@huggingface,node-addon-api,node-api-headers}:
#   source .device/bootstrap.sh; MAKE_GOLDENS=a,b AB=1 bash libs/native/scripts/device-all.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
cd "$ROOT"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
DEADLINE=${DEADLINE_S:-170}
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE - $(date +%s) + T0 )); }
MODEL=${MODEL:-/tmp/lmf-eng-random-7b}  # made in this call (a directory another call left may be incomplete or cold)
LOGS=${LOGS:-/tmp/lmf-device-logs}
mkdir -p "$LOGS"
pack() { tar -cf "$OUT/logs.tar" -C "$LOGS" . 2>/dev/null; }
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

# 1. builds (CPU) in parallel with the model and goldens (GPU)
BUILD=libs/native/build/cuda
( cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j 16 ) > "$LOGS/addon-build.log" 2>&1 &
ADDON_PID=$!
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  OUT="$LOGS" SKIP_TESTS=1 bash libs/native/scripts/device-test.sh > "$LOGS/test-build.txt" 2>&1 &
  TB_PID=$!
fi
( [ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" > "$LOGS/make_model.log" 2>&1 ) &
MODEL_PID=$!
GOLDEN=test/fixtures/golden
if [ -n "${MAKE_GOLDENS:-}" ]; then
  GOLDEN=/tmp/lmf-goldens; rm -rf $GOLDEN; mkdir -p $GOLDEN
  cp -r test/fixtures/golden/*/ $GOLDEN/
  python3 test/fixtures/golden/make_golden.py --out /tmp/lmf-goldens-new --cases "$MAKE_GOLDENS" > "$LOGS/make_golden.log" 2>&1
  echo "make_golden rc $? ($(el) s)"; tail -5 "$LOGS/make_golden.log"
  tar -cf "$OUT/goldens.tar" -C /tmp/lmf-goldens-new .
  cp -r /tmp/lmf-goldens-new/*/ $GOLDEN/
fi
wait $ADDON_PID; arc=$?
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
echo "addon build rc $arc: ${ADDON:-none} ($(el) s)"; pack
[ -n "$ADDON" ] || { tail -30 "$LOGS/addon-build.log"; }

# 2. kernel and backend tests (the GPU is shared with the model writer; correctness only)
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  wait $TB_PID
  echo "test build: $(grep -e "^build:" -e FAILED "$LOGS/test-build.txt" | head -3 | tr '\n' ' ') ($(el) s)"
  DT=libs/native/build/device-test
  timeout 60 $DT/test_kernels > "$LOGS/test_kernels.log" 2>&1 &
  K_PID=$!
  timeout 60 $DT/test_backend > "$LOGS/test_backend.log" 2>&1; b_rc=$?
  wait $K_PID; k_rc=$?
  echo "test_kernels rc $k_rc, test_backend rc $b_rc ($(el) s)"; pack
fi

# 3. parity with transformers' goldens through the addon and the compiled engine
if [ -n "$ADDON" ] && [ "${SKIP_PARITY:-0}" != 1 ]; then
  mkdir -p libs/native/build/cuda/Release && cp "$ADDON" libs/native/build/cuda/Release/ 2>/dev/null
  LMFLEET_NATIVE_DIR="$ROOT/libs/native" timeout 60 node test/bench/cuda-parity.js --golden "$GOLDEN" > "$LOGS/parity.log" 2>&1
  echo "cuda-parity rc $? ($(el) s)"; pack
fi

# 4. the engine benchmark (the GPU to itself from here on)
wait $MODEL_PID
echo "model ready ($(el) s): $(tail -1 "$LOGS/make_model.log" 2>/dev/null)"
if [ -n "$ADDON" ]; then
  AB_ARGS=()
  [ "${AB:-0}" = 1 ] && AB_ARGS=(--ab LMFLEET_GEMM_TUNE=0,LMFLEET_PDL=0)
  LMFLEET_GEMM_TUNE=${GEMM_TUNE:-0} LMFLEET_GEMM_TUNE_LOG=1 timeout ${BENCH_TIMEOUT:-100} node test/bench/engine-bench.js "$ADDON" "$MODEL" "${AB_ARGS[@]}" \
    > "$LOGS/engine.log" 2>&1
  echo "engine-bench rc $? ($(el) s)"; grep -e "^addon engine" -e "^loaded" -e "failed" "$LOGS/engine.log"; pack
fi

# 5. the peer, with whatever time is left
if [ "${SKIP_HF:-0}" = 1 ]; then : > "$LOGS/hf.log"; else
  budget=$(( $(left) - 4 ))
  if [ $budget -gt 20 ]; then
    timeout $budget python3 test/bench/hf_baseline.py "$MODEL" --attn "${HF_ATTN:-sdpa,eager}" --batches "${HF_BATCHES:-64,1,16}" \
      > "$LOGS/hf.log" 2>&1
    echo "hf_baseline rc $? (cap ${budget} s; $(el) s)"; pack
  else
    echo "hf_baseline: not run (${budget} s left)"; : > "$LOGS/hf.log"
  fi
  grep -e "^transformers" -e "^loaded" -e Error "$LOGS/hf.log" | tail -12
fi

# 6. summary
echo "== tests =="
grep -e "passed" "$LOGS/test_kernels.log" 2>/dev/null | tail -1
grep -e FAIL -e ERROR "$LOGS/test_kernels.log" 2>/dev/null | head -10
grep -e "linear.*tun" "$LOGS/test_kernels.log" 2>/dev/null | cut -c1-200
grep -e "passed" -e FAIL -e ERROR "$LOGS/test_backend.log" 2>/dev/null | tail -6
echo "== parity =="
grep -v PARITY_JSON "$LOGS/parity.log" 2>/dev/null | grep -e golden -e ERROR | head -20
echo "== gemm tuning =="
grep "lmfleet\] gemm" "$LOGS/engine.log" 2>/dev/null | sort -u | head -12
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
if [ -f "$LOGS/engine.log" ]; then
  python3 test/bench/bench_table.py "$LOGS/engine.log" "$LOGS/hf.log" --card "$CARD" --commit "${COMMIT:-unknown}" \
    | tee "$OUT/RESULTS.md"
fi
echo "total $(el) s"; pack
