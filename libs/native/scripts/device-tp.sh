#!/usr/bin/env bash
# On the GPU machine: tensor parallelism (issue 8) of the CUDA backend, in one call.
#   1. builds the addon's cuda variant with plain CMake (as device-bench.sh) and finds NCCL (LMFLEET_NCCL_LIB: the
#      libnccl.so.2 of PyTorch's nvidia-nccl wheel when the system has none; the addon dlopens it)
#   2. test/bench/tp-collective-check.js: the cuda collectives on fresh random inputs vs serial references —
#      the same-GPU device collective (2 and 4 ranks on GPU 0, bit-exact) always; with 2+ GPUs ranks 0,1 three
#      times: LMFLEET_TP_P2P unset (NVLink peer exchange up to 4 MiB, NCCL above), =all (peer only), =0 (NCCL only)
#   3. test/bench/tp-parity.js: tp 1 vs tp N of the CudaDecoder on random models (make_random_model.py: a GQA fp16
#      model, 4 layers, hidden 1024, inter 3072, 16 q / 2 KV heads (tp 4: KV heads replicated), vocab 32000, and its
#      AutoAWQ W4 g128 checkpoint; and a 4-layer Qwen3-MoE-shaped model, fp16 and W4, every token choosing all 4
#      experts): forward logits within the f16 tolerance, greedy tokens for 64 steps of 4 batched prompts (a divergence only at a
#      top-2 margin below 0.02 counts as f16 noise). 1 GPU: tp 2 and 4 with every rank on GPU 0 (device
#      collective, no graphs); 2+ GPUs: tp 2 on GPUs 0,1 with CUDA graphs on (peer exchange) and off (peer + NCCL,
#      and NCCL only).
#   4. 2+ GPUs: test/bench/engine-bench.js on the random Llama-2-7B-shaped fp16 model at tp 1 vs tp 2, batch 1 and
#      64 (64 new tokens per request), and the speedups (issue 8 asks >= 1.6x at batch 1, >= 1.8x at batch 64).
#      1 GPU: the same at tp 1 vs tp 2 on GPU 0 twice (devices 0,0) on a 4-layer model — a smoke run of the
#      sharded decode path, not a speed figure (both ranks share one GPU).
# From the repo root, carrying .device node_modules/node-addon-api node_modules/node-api-headers:
#   source .device/bootstrap.sh; bash libs/native/scripts/device-tp.sh
# Env: SKIP_MOE=1 (no MoE models in the parity stage), STAGES (default "build collective parity bench"; also "trace", TRACE_ARGS below), LAYERS (bench model layers, default 32), SKIP_W4=1,
#      PARITY_RUNS ("tp devices graphs p2p fuse;..."; p2p: a tp_variant: - / 0 / all / pdl / wide / ll / ll0),
#      PARITY_EXTRA (more tp-parity.js arguments, e.g. "--same-env LMFLEET_TP_PDL=1 --prompts 1": a path that must
#      give the same bits), COLL_RUNS ("devices variant;..."), BENCH_RUNS (default "1 2 2-fuse0 2-pdl 2-wide"), BENCH_AB
#      (engine-bench.js --ab: each bench run first measures with these variables set, e.g. LMFLEET_L2_PREFETCH=64,
#      then without, on the same loaded model; the "(VAR=V) batch" lines; BENCH_AB_TP1=0: not at tp 1),
#      LMFLEET_TP_STAMPS=1 (passed through: each rank's host launch times per step, medians printed with the bench lines).
#      LMFLEET_STEP_STAMPS=1 (passed through: per GPU, a graph step's launch / graph / after-graph times, medians).
#      BENCH_BATCHES (default 1,64: the bench stage's batch sizes).
# Logs under $OUT; a summary last. Everything on 2 GPUs takes ~9 minutes (build ~80 s, 5 collective runs, 10 parity
# runs, 5 engine runs of ~40 s): near the 10-minute call limit, so split it (STAGES, PARITY_RUNS, BENCH_RUNS) over two
# calls on the warm machine (the build is kept).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
cd "$ROOT"
export PYTHONUNBUFFERED=1
STAGES=${STAGES:-build collective parity bench}
has() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
echo "GPUs: $NGPU ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
SUMMARY="$OUT/tp-summary.md"
: > "$SUMMARY"

# the 7B-shaped bench model is written in the background while the addon builds and the checks run
LAYERS=${LAYERS:-32}
BIG=/tmp/lmf-random-7b-$LAYERS
if has bench && [ "$NGPU" -ge 2 ] && [ ! -f "$BIG/config.json" ]; then
  python3 test/bench/make_random_model.py "$BIG" --layers "$LAYERS" > "$OUT/make_big.log" 2>&1 &
  BIG_PID=$!
fi

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
if has build || [ -z "$(find $BUILD -name lmfleet_native.node 2>/dev/null | head -1)" ]; then
  t0=$(date +%s)
  { cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
      -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" &&
    cmake --build $BUILD -j 16; } > "$OUT/addon-build.log" 2>&1 || { tail -40 "$OUT/addon-build.log"; echo "ADDON BUILD FAILED"; exit 1; }
  echo "addon build: $(( $(date +%s) - t0 )) s"
fi
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)

# NCCL: the system's, else PyTorch's wheel
if [ -z "${LMFLEET_NCCL_LIB:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libnccl.so.2'; then
  NCCL_DIR=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
  [ -n "$NCCL_DIR" ] && [ -f "$NCCL_DIR/libnccl.so.2" ] && export LMFLEET_NCCL_LIB="$NCCL_DIR/libnccl.so.2"
  [ -z "${LMFLEET_NCCL_LIB:-}" ] && export LMFLEET_NCCL_LIB=$(find / -name 'libnccl.so.2' -not -path '/proc/*' 2>/dev/null | head -1)
fi
echo "NCCL: ${LMFLEET_NCCL_LIB:-system libnccl.so.2}"

# A run's exchange variant as environment (collective and parity runs): - the defaults; pdl LMFLEET_TP_PDL=1; wide
# LMFLEET_TP_FUSE_ROWS=256; ll / ll0 LMFLEET_TP_LL=1 / 0; push0
# LMFLEET_TP_LL_PUSH=0 (the LL kernel stores then polls per vector); push LMFLEET_TP_AR_PUSH=1 (the all-reduce and the
# two-phase fused kernel store into the peers, sum from local memory); pushw: push + LMFLEET_TP_FUSE_ROWS=256;
# anything else LMFLEET_TP_P2P=it (all, 0). No
# argument: clears.
tp_variant() {
  unset LMFLEET_TP_P2P LMFLEET_TP_PDL LMFLEET_TP_FUSE_ROWS LMFLEET_TP_LL LMFLEET_TP_LL_PUSH LMFLEET_TP_AR_PUSH
  case "${1:--}" in
    -) ;; pdl) export LMFLEET_TP_PDL=1 ;; wide) export LMFLEET_TP_FUSE_ROWS=256 ;;
    push) export LMFLEET_TP_AR_PUSH=1 ;; pushw) export LMFLEET_TP_AR_PUSH=1 LMFLEET_TP_FUSE_ROWS=256 ;;
    ll) export LMFLEET_TP_LL=1 ;; ll0) export LMFLEET_TP_LL=0 ;; push0) export LMFLEET_TP_LL_PUSH=0 ;; *) export LMFLEET_TP_P2P=$1 ;;
  esac
}

if has collective; then
  echo "## collectives" >> "$SUMMARY"
  # across GPUs: LMFLEET_TP_P2P unset (peer exchange up to 4 MiB, NCCL above), all (peer exchange only), 0 (NCCL only);
  # pdl: LMFLEET_TP_PDL=1 (the exchange kernels launched as programmatic dependents); wide: LMFLEET_TP_FUSE_ROWS=256
  # (the fused all-reduce + add + rms_norm for up to 256 rows, one block per row). Each also times the exchange.
  runs=("0,0 -" "0,0,0,0 -")
  [ "$NGPU" -ge 2 ] && runs+=("0,1 -" "0,1 all" "0,1 0" "0,1 pdl" "0,1 wide")
  [ "$NGPU" -ge 4 ] && runs+=("0,1,2,3 -")
  # COLL_RUNS="0,1 -;0,1 ll0" replaces the list (the default is LMFLEET_TP_LL on, the fused kernel in the low-latency
  # protocol; ll0: LMFLEET_TP_LL=0, the two-phase fused kernel)
  [ -n "${COLL_RUNS:-}" ] && IFS=';' read -r -a runs <<< "$COLL_RUNS"
  first=1
  for r in "${runs[@]}"; do
    set -- $r
    tag="$(echo "$1" | tr , -)-p2p$2"
    tp_variant "$2"
    timeout 120 node test/bench/tp-collective-check.js "$ADDON" --devices "$1" > "$OUT/collective-$tag.log" 2>&1
    echo "collective check devices $1 variant $2 rc $?"
    grep '^|' "$OUT/collective-$tag.log" | { [ $first = 1 ] && cat || grep -v -e '^| case' -e '^| ---'; } >> "$SUMMARY"
    first=0
  done
  tp_variant
fi

SMALL=/tmp/lmf-random-gqa2-4l
SMALLW4=/tmp/lmf-random-gqa2-4l-awq128
if has parity || has bench; then
  [ -f "$SMALL/config.json" ] || python3 test/bench/make_random_model.py "$SMALL" --layers 4 --hidden 1024 --inter 3072 --heads 16 --kv-heads 2 \
    > "$OUT/make_small.log" 2>&1 || { tail -5 "$OUT/make_small.log"; echo "SMALL MODEL FAILED"; }
  [ "${SKIP_W4:-0}" = 1 ] || [ -f "$SMALLW4/config.json" ] || python3 test/bench/make_random_model.py "$SMALLW4" --layers 4 --hidden 1024 \
    --inter 3072 --heads 16 --kv-heads 2 --awq-group 128 > "$OUT/make_small_w4.log" 2>&1 || { tail -5 "$OUT/make_small_w4.log"; echo "W4 MODEL FAILED"; }
fi
# mixture of experts (SKIP_MOE=1: not): Qwen3-MoE-shaped, 4 layers, every expert chosen by every token (4 of 4), so
# the ranks' f16 rounding cannot flip a near-tied routing choice and the comparison stays strict; fp16 and W4 g128
MOE=/tmp/lmf-random-moe-4l
MOEW4=/tmp/lmf-random-moe-4l-awq128
MOE_ARGS="--arch qwen3_moe --layers 4 --hidden 1024 --heads 16 --kv-heads 4 --head-dim 64 --experts 4 --experts-per-tok 4 --moe-inter 1024"
if has parity && [ "${SKIP_MOE:-0}" != 1 ]; then
  [ -f "$MOE/config.json" ] || python3 test/bench/make_random_model.py "$MOE" $MOE_ARGS > "$OUT/make_moe.log" 2>&1 || { tail -5 "$OUT/make_moe.log"; echo "MOE MODEL FAILED"; }
  [ "${SKIP_W4:-0}" = 1 ] || [ -f "$MOEW4/config.json" ] || python3 test/bench/make_random_model.py "$MOEW4" $MOE_ARGS --awq-group 128 \
    >> "$OUT/make_moe.log" 2>&1 || { tail -5 "$OUT/make_moe.log"; echo "MOE W4 MODEL FAILED"; }
fi

if has parity; then
  echo "## parity (tp 1 vs tp N, same backend)" >> "$SUMMARY"
  first=1
  runs=()
  # across GPUs: graphs on (peer exchange in the graphs), off (peer exchange for small messages, NCCL for large),
  # off with LMFLEET_TP_P2P=0 (NCCL only)
  # (fields: tp, devices, graphs, LMFLEET_TP_P2P (or pdl: LMFLEET_TP_PDL=1), LMFLEET_TP_FUSE — fuse 0: the peer
  # all-reduce and the add-rms-norm as two kernels)
  # PARITY_RUNS="2 0,1 1 - 1;..." replaces the list
  if [ -n "${PARITY_RUNS:-}" ]; then IFS=';' read -r -a runs <<< "$PARITY_RUNS"
  elif [ "$NGPU" -ge 2 ]; then runs+=("2 0,1 1 - 1" "2 0,1 1 - 0" "2 0,1 1 pdl 1" "2 0,1 0 - 1" "2 0,1 0 0 1"); fi
  # same-GPU ranks (the device collective waits on the host, so no graphs): on 1-GPU machines, or ALL_PARITY=1
  if [ -z "${PARITY_RUNS:-}" ] && { [ "$NGPU" -lt 2 ] || [ "${ALL_PARITY:-0}" = 1 ]; }; then runs+=("2 0,0 0 - 1" "4 0,0,0,0 0 - 1"); fi
  # the MoE models: tp 2 across GPUs with graphs on and off, tp 2 and 4 on one GPU (MOE_PARITY_RUNS replaces the list)
  if [ "$NGPU" -ge 2 ]; then moe_runs=("2 0,1 1 - 1" "2 0,1 0 - 1"); else moe_runs=("2 0,0 0 - 1" "4 0,0,0,0 0 - 1"); fi
  [ -n "${MOE_PARITY_RUNS:-}" ] && IFS=';' read -r -a moe_runs <<< "$MOE_PARITY_RUNS"
  for m in "$SMALL" $([ "${SKIP_W4:-0}" = 1 ] || echo "$SMALLW4") $([ "${SKIP_MOE:-0}" = 1 ] || echo "$MOE") \
    $([ "${SKIP_MOE:-0}" = 1 ] || [ "${SKIP_W4:-0}" = 1 ] || echo "$MOEW4"); do
    case "$m" in *moe*) mruns=("${moe_runs[@]}") ;; *) mruns=("${runs[@]}") ;; esac
    for r in "${mruns[@]}"; do
      set -- $r
      tag="$(basename "$m")-tp$1-$(echo "$2" | tr , -)-graphs$3-p2p$4-fuse$5"
      tp_variant "$4"
      LMFLEET_TP_FUSE=$5 LMFLEET_CUDA_GRAPHS=$3 timeout 150 node test/bench/tp-parity.js "$ADDON" "$m" --tp "$1" --devices "$2" ${PARITY_EXTRA:-} > "$OUT/parity-$tag.log" 2>&1
      echo "parity $tag rc $?: $(grep '^| [a-z]' "$OUT/parity-$tag.log" | grep -v '^| model' | tail -1) $(grep '^tp .* vs without' "$OUT/parity-$tag.log")"
      if [ $first = 1 ]; then grep '^| model\|^| ---' "$OUT/parity-$tag.log" | sed 's/^| model |/| model (graphs) |/' >> "$SUMMARY"; first=0; fi
      grep '^| [a-z]' "$OUT/parity-$tag.log" | grep -v '^| model' | sed "s/^| \([^|]*\)|/| \1(graphs $3, p2p $4, fuse $5) |/" >> "$SUMMARY"
      grep -q 'tp-parity failed' "$OUT/parity-$tag.log" && tail -5 "$OUT/parity-$tag.log"
    done
  done
  tp_variant
fi

if has bench; then
  echo "## engine bench (engine-bench.js: B requests, 128 prompt + 64 greedy new tokens)" >> "$SUMMARY"
  if [ "$NGPU" -ge 2 ]; then
    [ -n "${BIG_PID:-}" ] && wait "$BIG_PID"
    [ -f "$BIG/config.json" ] || python3 test/bench/make_random_model.py "$BIG" --layers "$LAYERS" > "$OUT/make_big.log" 2>&1 ||
      { tail -5 "$OUT/make_big.log"; echo "7B MODEL FAILED"; }
    BENCH_MODEL=$BIG
    TP2_DEVICES=0,1
  else
    BENCH_MODEL=$SMALL
    TP2_DEVICES=0,0
  fi
  # tp 2 twice: the fused peer all-reduce + add-rms-norm (default), and LMFLEET_TP_FUSE=0 (two kernels); 2-pdl: the
  # exchange kernels launched as programmatic dependents (LMFLEET_TP_PDL=1)
  # 2-wide: LMFLEET_TP_FUSE_ROWS=256 (batch 64 through the one-block-per-row fused kernel); 1-tune / 2-tune:
  # LMFLEET_GEMM_TUNE=1 (per-shape cuBLASLt choice for the batch-64 GEMMs, whose widths halve at tp 2)
  for run in ${BENCH_RUNS:-1 2 2-fuse0 2-pdl 2-wide}; do
    tp=${run%%-*}
    devs=$([ $tp = 1 ] && echo 0 || echo $TP2_DEVICES)
    LMFLEET_GEMM_TUNE=$([ "${run#*-}" = tune ] && echo 1 || echo 0) \
    LMFLEET_TP_FUSE_ROWS=$([ "$run" = 2-wide ] && echo 256 || echo "${LMFLEET_TP_FUSE_ROWS:-}") LMFLEET_TP_PDL=$([ "$run" = 2-pdl ] && echo 1 || echo 0) LMFLEET_TP_FUSE=$([ "$run" = 2-fuse0 ] && echo 0 || echo 1) timeout 300 node test/bench/engine-bench.js "$ADDON" "$BENCH_MODEL" \
      --batches ${BENCH_BATCHES:-1,64} --new 64 --prefill 0 --tp $tp --devices $devs $([ -n "${BENCH_AB:-}" ] && { [ $tp != 1 ] || [ "${BENCH_AB_TP1:-1}" = 1 ]; } && echo "--ab $BENCH_AB") > "$OUT/bench-tp$run.log" 2>&1
    echo "bench tp $run rc $?"; grep -e "addon engine .*batch" -e "stamps\]" "$OUT/bench-tp$run.log"
  done
  node -e '
    const fs = require("fs");
    const get = (f) => { if (!fs.existsSync(f)) return null; const l = fs.readFileSync(f, "utf8").split("\n").find((x) => x.startsWith("ADDON_JSON ")); return l ? JSON.parse(l.slice(11)) : null; };
    const a = get(process.argv[1]), b = get(process.argv[2]), f0 = get(process.argv[5]), pd = get(process.argv[6]), wd = get(process.argv[7]);
    console.log(`model ${process.argv[3]}, tp 2 on devices ${process.argv[4]}`);
    console.log("| batch | tp 1 ms/step | tp 2 ms/step | tp 1 tok/s | tp 2 tok/s | speedup | tp 2 unfused ms/step | tp 2 PDL exchange ms/step | tp 2 wide fused ms/step |");
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const B of ["1", "64"]) {
      const x = a?.decode?.[B], y = b?.decode?.[B];
      if (!x || !y) { console.log(`| ${B} | ${x ? x.ms_per_step.toFixed(3) : "-"} | ${y ? y.ms_per_step.toFixed(3) : "-"} | | | |`); continue; }
      console.log(`| ${B} | ${x.ms_per_step.toFixed(3)} | ${y.ms_per_step.toFixed(3)} | ${x.tok_s.toFixed(0)} | ${y.tok_s.toFixed(0)} | ${(x.ms_per_step / y.ms_per_step).toFixed(2)}x | ${f0?.decode?.[B] ? f0.decode[B].ms_per_step.toFixed(3) : "-"} | ${pd?.decode?.[B] ? pd.decode[B].ms_per_step.toFixed(3) : "-"} | ${wd?.decode?.[B] ? wd.decode[B].ms_per_step.toFixed(3) : "-"} |`);
    }' "$OUT/bench-tp1.log" "$OUT/bench-tp2.log" "$(basename "$BENCH_MODEL")" "$TP2_DEVICES" "$OUT/bench-tp2-fuse0.log" "$OUT/bench-tp2-pdl.log" "$OUT/bench-tp2-wide.log" >> "$SUMMARY"
fi
# trace: one engine run on the bench model traced by CUPTI (scripts/cupti_trace.cpp), a rank's kernels as they overlap
# -> trace_step_table.py (each kernel's share of the step). TRACE_ARGS: engine-bench.js arguments (default tp 2 batch 1);
# TRACE_DEVICES: the GPUs whose tables are printed (default 0).
if has trace; then
  CUDA_INC=$(dirname "$NVCC")/../include
  KREC=$(grep -o 'CUpti_ActivityKernel[0-9]\+' "$CUDA_INC/cupti_activity.h" | sort -V | tail -1)
  g++ -O2 -shared -fPIC -DKREC=$KREC libs/native/scripts/cupti_trace.cpp -I"$CUDA_INC" -L"$(dirname "$NVCC")/../lib64" -lcupti \
    -o /tmp/libcupti_trace.so > "$OUT/cupti-build.log" 2>&1 || tail -5 "$OUT/cupti-build.log"
  [ -f "$BIG/config.json" ] || python3 test/bench/make_random_model.py "$BIG" --layers "$LAYERS" > "$OUT/make_big.log" 2>&1
  CUDA_INJECTION64_PATH=/tmp/libcupti_trace.so CUPTI_TRACE_OUT=/tmp/tp-trace.csv LD_LIBRARY_PATH="$(dirname "$NVCC")/../lib64:${LD_LIBRARY_PATH:-}" \
    timeout 200 node test/bench/engine-bench.js "$ADDON" "$BIG" ${TRACE_ARGS:---batches 1 --new 16 --prefill 0 --tp 2 --devices 0,1} > "$OUT/trace.log" 2>&1
  echo "trace rc $?: $(grep -e cupti_trace -e 'batch 1:' "$OUT/trace.log" | tr '\n' ' ')"
  for d in ${TRACE_DEVICES:-0}; do
    { echo "## trace (device $d): ${TRACE_ARGS:-tp 2 batch 1}"; python3 libs/native/scripts/trace_step_table.py /tmp/tp-trace.csv --device $d 2>&1; } >> "$SUMMARY"
  done
fi
echo "== summary =="
cat "$SUMMARY"
