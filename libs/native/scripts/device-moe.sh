#!/usr/bin/env bash
# On the GPU machine, one call: mixture of experts on CUDA.
#   1. the addon's cuda variant, beside a random Qwen3-MoE-shaped model, fp16 and AutoAWQ W4 g128
#      (make_random_model.py --arch qwen3_moe: Qwen3-30B-A3B's layer, MOE_LAYERS of its 48 layers)
#   2. test/bench/cuda-parity.js on every golden case (mixtral and qwen3-moe among them)
#   3. test/bench/engine-bench.js on the MoE model, the runs RUNS names (below), decode at
#      BATCHES and a 2048-token prefill
# From a root holding libs/native, dist/, test/ and node_modules/{@huggingface,node-addon-api,node-api-headers}:
#   source .device/bootstrap.sh; bash libs/native/scripts/device-moe.sh
# Env: SKIP_BENCH=1 (no model, no step 3), RUNS (default "fp16 w4"; also w4-host), BATCHES (default 1,16,64), MOE_LAYERS (default 8), MAKE_GOLDENS=case,... (made
# first by make_golden.py, sent back as $OUT/goldens.tar, and checked in step 2).
set -uo pipefail
BUDGET=${BUDGET:-560}
source "$(dirname "$0")/device-common.sh"
BUILD=libs/native/build/cuda-cmake
build_addon_cuda $BUILD &
ADDON_PID=$!
if [ -n "${MAKE_GOLDENS:-}" ]; then
  PYTHONUNBUFFERED=1 python3 test/fixtures/golden/make_golden.py --out /tmp/lmf-goldens-new --cases "$MAKE_GOLDENS" > "$OUT/make_golden.log" 2>&1
  echo "make_golden rc $? ($(el))"; grep -e seed= "$OUT/make_golden.log"
  tar -cf "$OUT/goldens.tar" -C /tmp/lmf-goldens-new . && cp -r /tmp/lmf-goldens-new/*/ test/fixtures/golden/
fi
M="--arch qwen3_moe --hidden 2048 --layers ${MOE_LAYERS:-8} --heads 32 --kv-heads 4 --head-dim 128 --experts 128
   --experts-per-tok 8 --moe-inter 768 --vocab 151936"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  python3 test/bench/make_random_model.py /tmp/moe-fp16 $M > "$OUT/make_model.log" 2>&1
  python3 test/bench/make_random_model.py /tmp/moe-w4 $M --awq-group 128 >> "$OUT/make_model.log" 2>&1
  echo "models ($(el)): $(grep wrote "$OUT/make_model.log" | tr '\n' ' ')"
fi
wait $ADDON_PID; echo "addon build rc $? ($(el))"
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
[ -n "$ADDON" ] || { tail -20 "$OUT/addon-build.log"; exit 1; }
mkdir -p libs/native/build/cuda/Release && cp "$ADDON" libs/native/build/cuda/Release/
LMFLEET_NATIVE_DIR="$ROOT/libs/native" timeout $(tb 90) node test/bench/cuda-parity.js --golden test/fixtures/golden > "$OUT/parity.log" 2>&1
echo "cuda-parity rc $? ($(el))"; grep -v PARITY_JSON "$OUT/parity.log" | grep -e golden -e ERROR | grep -e moe -e mixtral -e FAIL -e ERROR
echo "parity: $(grep -c -e '-> PASS' "$OUT/parity.log") PASS, $(grep -c -e '-> FAIL' "$OUT/parity.log") FAIL"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  # RUNS: fp16; w4 (the defaults: the grouped experts' GEMV on the tensor cores); w4-host (LMFLEET_MOE_W4_GROUPED=0:
  # per-expert launches after a host wait)
  for run in ${RUNS:-fp16 w4}; do
    m=${run%%-*}
    envs=$(case $run in w4-host) echo LMFLEET_MOE_W4_GROUPED=0 ;; esac)
    env $envs timeout $(tb 150) node test/bench/engine-bench.js "$ADDON" \
      /tmp/moe-$m --batches "${BATCHES:-1,16,64}" > "$OUT/engine-moe-$run.log" 2>&1
    echo "engine-bench moe $run rc $? ($(el))"; grep -e "^addon engine" -e "^loaded" -e "failed" -e Error "$OUT/engine-moe-$run.log" | head -12
  done
fi
echo "total $(el)"
