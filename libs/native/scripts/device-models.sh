#!/usr/bin/env bash
# On the GPU machine, one call: the architectures beyond Llama/Qwen2 on CUDA.
#   1. the addon's cuda variant, in parallel with golden cases made by transformers (MAKE_GOLDENS=case,..., sent back
#      as $OUT/goldens.tar) and a Qwen3-8B-shaped random model, fp16 and AutoAWQ W4 g128 (make_random_model.py --arch qwen3)
#   2. test/bench/cuda-parity.js on every golden case (the committed ones plus the new ones)
#   3. test/bench/engine-bench.js on the Qwen3-8B shape: fp16 and W4 decode at batch 1/16/64 and a 2048-token prefill
#      (the per-head q/k norm runs in the rope + KV store kernel; W4 does not fuse rope into its qkv GEMV there);
#      BENCH_ARCH=gemma3: the Gemma-3-4B shape instead (sandwich norms: no W4 fused GEMVs)
# From a root holding libs/native, dist/, test/ and node_modules/{@huggingface,node-addon-api,node-api-headers}:
#   source .device/bootstrap.sh; MAKE_GOLDENS=mistral bash libs/native/scripts/device-models.sh
# Env: SKIP_BENCH=1 (step 3 off), BATCHES (default 1,16,64).
set -uo pipefail
BUDGET=${BUDGET:-560}
source "$(dirname "$0")/device-common.sh"
BUILD=libs/native/build/cuda-cmake
build_addon_cuda $BUILD &
ADDON_PID=$!
GOLDEN=/tmp/lmf-goldens; rm -rf $GOLDEN; mkdir -p $GOLDEN; cp -r test/fixtures/golden/*/ $GOLDEN/
if [ -n "${MAKE_GOLDENS:-}" ]; then
  PYTHONUNBUFFERED=1 python3 test/fixtures/golden/make_golden.py --out /tmp/lmf-goldens-new --cases "$MAKE_GOLDENS" > "$OUT/make_golden.log" 2>&1
  echo "make_golden rc $? ($(el))"; tail -3 "$OUT/make_golden.log"
  tar -cf "$OUT/goldens.tar" -C /tmp/lmf-goldens-new . && cp -r /tmp/lmf-goldens-new/*/ $GOLDEN/
fi
Q3="--arch qwen3 --hidden 4096 --inter 12288 --layers 36 --heads 32 --kv-heads 8 --head-dim 128 --vocab 151936"
[ "${BENCH_ARCH:-qwen3}" = gemma3 ] && Q3="--arch gemma3 --hidden 2560 --inter 10240 --layers 34 --heads 8 --kv-heads 4 --head-dim 256 --vocab 262208"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  python3 test/bench/make_random_model.py /tmp/q3-fp16 $Q3 > "$OUT/make_model.log" 2>&1
  python3 test/bench/make_random_model.py /tmp/q3-w4 $Q3 --awq-group 128 >> "$OUT/make_model.log" 2>&1
  echo "models ($(el)): $(grep -c wrote "$OUT/make_model.log") written"
fi
wait $ADDON_PID; echo "addon build rc $? ($(el))"
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
[ -n "$ADDON" ] || { tail -20 "$OUT/addon-build.log"; exit 1; }
mkdir -p libs/native/build/cuda/Release && cp "$ADDON" libs/native/build/cuda/Release/
LMFLEET_NATIVE_DIR="$ROOT/libs/native" timeout $(tb 90) node test/bench/cuda-parity.js --golden $GOLDEN > "$OUT/parity.log" 2>&1
echo "cuda-parity rc $? ($(el))"; grep -v PARITY_JSON "$OUT/parity.log" | grep -e golden -e ERROR
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  for m in fp16 w4; do
    timeout $(tb 150) node test/bench/engine-bench.js "$ADDON" /tmp/q3-$m --batches "${BATCHES:-1,16,64}" > "$OUT/engine-$m.log" 2>&1
    echo "engine-bench $m rc $? ($(el))"; grep -e "^addon engine" -e "^loaded" -e "failed" -e Error "$OUT/engine-$m.log" | head -12
  done
fi
echo "total $(el)"
