#!/usr/bin/env bash
# On the GPU machine, one call: the addon engine's decode A/B runs on the random 7B-shaped models, with the GPU's clocks,
# power, throttle reasons and compute processes logged once a second beside them (so a slow row can be told apart from
# a throttled or shared GPU), and the C++ fp16 layer stack (bench_decoder) before and after as a fixed reference.
#   source .device/bootstrap.sh; bash libs/native/scripts/device-engine-ab.sh
# Env: RUNS ('|'-separated engine runs, each "w4 ENGINE-BENCH ARGS..." or "fp16 ..."; default: W4 and fp16 at batches 1/16/64
#   with no A/B), NCU_ENGINE ("w4|fp16 ENGINE-BENCH ARGS": that run once more under Nsight Compute, a table of kernel
#   durations by (name, grid) -> $OUT/ncu_engine_table.md), TRACE_ENGINE ('|'-separated runs, each "[VAR=V[,VAR=V]] w4|fp16
#   ENGINE-BENCH ARGS": traced by CUPTI (scripts/cupti_trace.cpp; the machine has no Nsight Systems), graph nodes
#   included, the kernels as they overlap in the engine ->
#   trace_step_table.py: each kernel's share of the decode step's wall time, and one layer's timeline), SKIP_STACK=1 (no
#   fp16 layer stack before and after), BUDGET (s, default 560). Logs under $OUT (engine-N.log, smi.csv, bench_fp16_*.log); summary last.
set -uo pipefail
BUDGET=${BUDGET:-560} TB_KEEP=10
source "$(dirname "$0")/device-common.sh"  # cd to the repo root; OUT, el, tb
MODEL=/tmp/lmf-random-7b-32
W4MODEL=/tmp/lmf-random-7b-32-awq128
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
B=libs/native/build/device-test
RUNS=${RUNS-"w4 --batches 1,16,64 --new 64|fp16 --batches 1,16,64 --new 64"}
gpu_log_start
{ cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j 8; } > "$OUT/addon-build.log" 2>&1 &
ADDON_PID=$!
need_fp16=0; case "$RUNS ${TRACE_ENGINE:-}" in *fp16*) need_fp16=1;; esac
{ [ -f "$W4MODEL/config.json" ] || python3 test/bench/make_random_model.py "$W4MODEL" --layers 32 --awq-group 128
  [ $need_fp16 = 0 ] || [ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers 32; } \
  > "$OUT/make_models.log" 2>&1 &
MODELS_PID=$!
if [ "${SKIP_STACK:-0}" != 1 ]; then
  SKIP_TESTS=1 bash libs/native/scripts/device-test.sh > "$OUT/device-test-build.txt" 2>&1
  echo "bench build rc $? ($(el))"
fi
stack() {  # the fp16 C++ layer stack: graphs, our kernels + cuBLAS, no scheduler
  [ "${SKIP_STACK:-0}" = 1 ] && return
  LMF_BENCH_W4=0 timeout $(tb 40) $B/bench_decoder --prefill 128 > "$OUT/bench_fp16_$1.log" 2>&1
  echo "bench_decoder fp16 stack ($1) rc $? ($(el)): $(grep '^| batch' "$OUT/bench_fp16_$1.log" | cut -d'|' -f2,4 | tr '\n' ' ')"
}
stack before
wait $ADDON_PID; echo "addon build rc $? ($(el))"
wait $MODELS_PID; echo "models rc $? ($(el)): $(grep wrote "$OUT/make_models.log" | tr '\n' ' ')"
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
[ -n "$ADDON" ] || tail -20 "$OUT/addon-build.log"
i=0
IFS='|' read -ra RUNLIST <<< "$RUNS"
for r in "${RUNLIST[@]}"; do
  i=$((i + 1))
  kind=${r%% *}; args=${r#* }
  dir=$W4MODEL; [ "$kind" = fp16 ] && dir=$MODEL
  echo "[$(el)] engine $i: $kind $args; GPU processes before: $(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | tr '\n' ' ')"
  timeout $(tb 300) node test/bench/engine-bench.js "$ADDON" "$dir" $args > "$OUT/engine-$i.log" 2>&1
  echo "engine $i rc $? ($(el))"
  grep -e "addon engine" -e loaded "$OUT/engine-$i.log" | cut -d';' -f1 | sed 's/^/  /'
done
stack after
if [ -n "${NCU_ENGINE:-}" ]; then  # "w4|fp16 ENGINE-BENCH ARGS": that run under Nsight Compute, one duration per kernel
  NCU_BIN=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  kind=${NCU_ENGINE%% *}; args=${NCU_ENGINE#* }
  dir=$W4MODEL; [ "$kind" = fp16 ] && dir=$MODEL
  timeout $(tb 240) "$NCU_BIN" --clock-control none --cache-control none --metrics gpu__time_duration.sum,launch__grid_size \
    --csv --page raw node test/bench/engine-bench.js "$ADDON" "$dir" $args > "$OUT/ncu_engine.csv" 2> "$OUT/ncu_engine.log"
  echo "ncu engine ($NCU_ENGINE) rc $? ($(el))"
  python3 libs/native/scripts/ncu_step_table.py "$OUT/ncu_engine.csv" --top 40 > "$OUT/ncu_engine_table.md" 2>&1
  cat "$OUT/ncu_engine_table.md"
fi
if [ -n "${TRACE_ENGINE:-}" ]; then  # the kernels as they run in the engine, by CUPTI (scripts/cupti_trace.cpp)
  CUDA_INC=$(dirname "$NVCC")/../include
  KREC=$(grep -o 'CUpti_ActivityKernel[0-9]\+' "$CUDA_INC/cupti_activity.h" | sort -V | tail -1)
  g++ -O2 -shared -fPIC -DKREC=$KREC libs/native/scripts/cupti_trace.cpp -I"$CUDA_INC" -L"$(dirname "$NVCC")/../lib64" -lcupti \
    -o /tmp/libcupti_trace.so > "$OUT/cupti-build.log" 2>&1
  echo "cupti tracer ($KREC) rc $? ($(el))"
  j=0
  IFS='|' read -ra NLIST <<< "$TRACE_ENGINE"
  for r in "${NLIST[@]}"; do
    j=$((j + 1)); envs=""
    case "${r%% *}" in *=*) envs=${r%% *}; r=${r#* };; esac
    kind=${r%% *}; args=${r#* }
    dir=$W4MODEL; [ "$kind" = fp16 ] && dir=$MODEL
    env ${envs//,/ } CUDA_INJECTION64_PATH=/tmp/libcupti_trace.so CUPTI_TRACE_OUT=/tmp/trace-$j.csv \
      LD_LIBRARY_PATH="$(dirname "$NVCC")/../lib64:${LD_LIBRARY_PATH:-}" timeout $(tb 200) \
      node test/bench/engine-bench.js "$ADDON" "$dir" $args > "$OUT/trace-$j.log" 2>&1
    echo "trace $j ($envs $kind $args) rc $? ($(el)): $(grep -e cupti_trace -e 'batch 1:' "$OUT/trace-$j.log" | tr '\n' ' ')"
    python3 libs/native/scripts/trace_step_table.py /tmp/trace-$j.csv > "$OUT/trace-$j-table.md" 2>&1
    echo "== trace $j: $envs $kind $args"; cat "$OUT/trace-$j-table.md"
  done
fi
gpu_log_summary
