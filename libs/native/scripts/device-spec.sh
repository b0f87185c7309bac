#!/usr/bin/env bash
# On the GPU machine, one call: speculative decoding with n-gram drafts (test/bench/spec-decode.js) on CUDA.
#   1. the addon's cuda variant, in parallel with a Llama-2-7B-shaped random model, fp16 and AutoAWQ W4 g128
#   2. spec-decode.js on both: plain vs ngram engines, greedy, one request at a time (and BATCH at a time), same tokens
#   3. the same on ../shared/models/tiny-qwen2-pydocs with its eval.txt as prompts (acceptance on text a model knows)
# From a root holding libs/native, dist/, test/ and node_modules/{@huggingface,node-addon-api,node-api-headers}:
#   source .device/bootstrap.sh; bash libs/native/scripts/device-spec.sh
# Env: DRAFTS (default "4"), FORCES (default "0 1"), NEW (default 128), BATCH (more batch sizes than 1, e.g. 8), SPEC_ARGS (more spec-decode.js flags).
set -uo pipefail
BUDGET=${BUDGET:-560}
source "$(dirname "$0")/device-common.sh"
BUILD=libs/native/build/cuda-cmake
build_addon_cuda $BUILD &
ADDON_PID=$!
python3 test/bench/make_random_model.py /tmp/l7-fp16 > "$OUT/make_model.log" 2>&1
python3 test/bench/make_random_model.py /tmp/l7-w4 --awq-group 128 >> "$OUT/make_model.log" 2>&1
echo "models ($(el)): $(grep -c wrote "$OUT/make_model.log") written"
wait $ADDON_PID; echo "addon build rc $? ($(el))"
ADDON=$(find $BUILD -name lmfleet_native.node | head -1)
[ -n "$ADDON" ] || { tail -20 "$OUT/addon-build.log"; exit 1; }
mkdir -p libs/native/build/cuda/Release && cp "$ADDON" libs/native/build/cuda/Release/
export LMFLEET_NATIVE_DIR="$ROOT/libs/native"
# FORCE=1 rows: LMFLEET_SPEC_FORCE=1 gives every step k drafts (the last k tokens when nothing matches): what a
# verification step costs next to a plain (graph) decode step, whatever the acceptance
for d in ${DRAFTS:-4}; do
  for m in fp16 w4; do
    for force in ${FORCES:-0 1}; do
      for b in 1 ${BATCH:-}; do
        echo "== l7-$m draft $d batch $b force $force"
        LMFLEET_SPEC_FORCE=$force timeout $(tb 120) node test/bench/spec-decode.js dist /tmp/l7-$m --backend cuda --prompt repeat \
          --new ${NEW:-128} --draft $d --batch $b --requests $(( b > 3 ? b : 3 )) ${SPEC_ARGS:-} 2>&1 | tail -5
      done
    done
  done
  M=../shared/models/tiny-qwen2-pydocs
  [ -d "$M" ] || M=var/tiny-qwen2-pydocs  # carried there (git-ignored) when ../shared is not on the machine
  if [ -d "$M" ]; then
    echo "== tiny-qwen2-pydocs eval.txt draft $d"
    timeout $(tb 60) node test/bench/spec-decode.js dist "$M" --backend cuda --prompt "$M/eval.txt" --new ${NEW:-128} --draft $d --lookup-min 2 2>&1 | tail -6
  fi
done
echo "total $(el)"
