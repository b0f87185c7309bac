#!/usr/bin/env bash
# On the GPU machine, one call to check host- and kernel-side changes that CI cannot run, plus a decode-attention split
# sweep: (1) device-test.sh's test_kernels + test_backend, (2) the addon built and prefix caching on CUDA
# (test/bench/prefix-cache.js on the random 7B-shaped model: same greedy tokens with and without, TTFT), (3)
# bench_attention at the shapes of tp 2 (16 / 16 heads) and tp 1 (32 / 32) for each split length in SPLITS (0 = the
# decoder's own choice), with the online kernel and the two-phase one (LMFLEET_ATTN_ONLINE=0).
#   source .device/bootstrap.sh; bash libs/native/scripts/device-verify.sh     (needs dist/ carried for step 2)
# (4) guided decoding (response_format) on CUDA: test/bench/guided-decoding.js on a tiny byte-level model written by
# dist's writeTinyModel (--new 160), test/bench/guided-formats.js (choice / grammar / regex, min-p 1), test/bench/prompt-logprobs.js and, with GUIDED_7B=1, on the random 7B-shaped model (--new 64); each exits 1
# unless every guided output parses and fits its schema. (5) with NCU=1: Nsight Compute on the W4 kernels of one 7B
# linear per shape in NCU_SHAPES (default "gate_up down") at NCU_M rows (default 64): device-common.sh's ncu_w4.
# (6) with W4_WIDE=1: bench_decoder's batched-decode W4 table (f16 vs the fused kernel vs the wide kernel's variants,
# per linear and per layer, m = 9..128), then test_backend with LMFLEET_W4A16_WIDE=V for each V in WIDE_TB.
# Env: SPLITS (default "0 32 64 128 256"), SKIP_DEVICE_TEST=1 (no test_kernels / test_backend build and run; needs
# SKIP_SWEEP=1), SKIP_PREFIX=1, SKIP_SWEEP=1, SKIP_GUIDED=1, GUIDED_7B=1, NCU=1, NCU_SHAPES,
# NCU_M, W4_WIDE=1, WIDE_TB, BUDGET (s, default 570). Logs under $OUT.
set -uo pipefail
BUDGET=${BUDGET:-570} TB_KEEP=10
source "$(dirname "$0")/device-common.sh"  # cd to the repo root; OUT, el, tb
MODEL=/tmp/lmf-random-7b-32
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
BUILD=libs/native/build/cuda
B=libs/native/build/device-test
gpu_log_start
{ cmake -S libs/native -B $BUILD -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
    -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
    -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build $BUILD -j 8; } > "$OUT/addon-build.log" 2>&1 &
ADDON_PID=$!
{ [ "${SKIP_PREFIX:-0}" = 1 ] && [ "${GUIDED_7B:-0}" != 1 ] || [ -f "$MODEL/config.json" ] ||
    python3 test/bench/make_random_model.py "$MODEL" --layers 32; } > "$OUT/make_models.log" 2>&1 &
MODELS_PID=$!
if [ "${SKIP_DEVICE_TEST:-0}" = 1 ]; then
  echo "device-test skipped (SKIP_DEVICE_TEST=1)" > "$OUT/device-test.txt"
else
  SKIP_BENCH=1 EXTRA_CU=src/cuda/bench_attention.cu bash libs/native/scripts/device-test.sh > "$OUT/device-test.txt" 2>&1
  echo "device-test rc $? ($(el))"
fi
if [ "${SKIP_SWEEP:-0}" != 1 ]; then
  K=$(ls $B/*.cu.o | grep -v -e test_ -e bench_ -e engine_bench -e backend_cuda -e cuda_decoder -e f32_ops -e peer_collective)
  "$NVCC" -arch=sm_90 $K $B/cpu_error.cc.o $B/bench_attention.cu.o -lcublas -lcublasLt -lcudart -lpthread -o $B/bench_attention \
    > "$OUT/bench_attention-link.log" 2>&1 || { echo "bench_attention link failed"; cat "$OUT/bench_attention-link.log"; }
  for hk in "16 16" "32 32"; do
    set -- $hk
    for online in 1 0; do
      for s in ${SPLITS:-0 32 64 128 256}; do
        log="$OUT/attn-h$1-online$online-s$s.log"
        LMFLEET_ATTN_ONLINE=$online timeout $(tb 40) $B/bench_attention --heads $1 --kv-heads $2 --batches 16,64 \
          --ctx 136,192,512 --prefill 0 --split $s > "$log" 2>&1
        grep '^| batch' "$log" | awk -F'|' -v h="$1" -v o="$online" -v s="$s" '{ printf "attn heads %s online %s split %s |%s| f16 %s us\n", h, o, s, $2, $4 }'
      done
    done
  done
  echo "sweep done ($(el))"
fi
wait $ADDON_PID; echo "addon build rc $? ($(el))"
# the engine loads build/<variant>/Release/*.node (cmake-js's layout); plain cmake writes it one level up
mkdir -p $BUILD/Release && cp $BUILD/lmfleet_native.node $BUILD/Release/
wait $MODELS_PID; echo "model rc $? ($(el))"
if [ "${SKIP_PREFIX:-0}" != 1 ]; then
  timeout $(tb 240) node test/bench/prefix-cache.js dist "$MODEL" --backend cuda --requests 16 --system 1024 > "$OUT/prefix-cache.log" 2>&1
  echo "prefix-cache rc $? ($(el))"; tail -12 "$OUT/prefix-cache.log"
fi
if [ "${SKIP_GUIDED:-0}" != 1 ]; then
  node -e "require('./dist/libs/engine/src/index.js').writeTinyModel('/tmp/lmf-tiny-guided', {arch: 'qwen2', seed: 11, hiddenSize: 128, numLayers: 2, intermediateSize: 256})" \
    > "$OUT/guided-tiny.log" 2>&1
  timeout $(tb 120) node test/bench/guided-decoding.js dist /tmp/lmf-tiny-guided --backend cuda --new 160 >> "$OUT/guided-tiny.log" 2>&1
  echo "guided (tiny, cuda) rc $? ($(el))"; tail -8 "$OUT/guided-tiny.log"
  # the sampler's masked draw (temperature > 0) and guided rows that also want log-probs
  timeout $(tb 120) node test/bench/guided-decoding.js dist /tmp/lmf-tiny-guided --backend cuda --new 160 --temperature 0.8 \
    --logprobs 2 > "$OUT/guided-tiny-t08.log" 2>&1
  echo "guided (tiny, cuda, T 0.8, logprobs 2) rc $? ($(el))"; tail -2 "$OUT/guided-tiny-t08.log"
  # guided_choice / guided_grammar / guided_regex sampled 8 at a time, and min-p 1 (= greedy) through the sampler
  timeout $(tb 120) node test/bench/guided-formats.js dist /tmp/lmf-tiny-guided --backend cuda > "$OUT/guided-formats.log" 2>&1
  echo "guided formats + min-p (tiny, cuda) rc $? ($(el))"; tail -3 "$OUT/guided-formats.log"
  # prompt log-probs (echo + logprobs): chunked prefill's logits rows vs scoreTokens on CUDA, and vs the CPU engine
  # (the CPU comparison needs the CPU addon: carry libs/native/build/cpu/Release)
  CMP=$(ls libs/native/build/cpu/Release/*.node > /dev/null 2>&1 && echo "--compare cpu")
  timeout $(tb 120) node test/bench/prompt-logprobs.js dist /tmp/lmf-tiny-guided --backend cuda $CMP > "$OUT/prompt-logprobs.log" 2>&1
  echo "prompt log-probs (tiny, cuda vs scoreTokens and cpu) rc $? ($(el))"; tail -3 "$OUT/prompt-logprobs.log"
  if [ "${GUIDED_7B:-0}" = 1 ]; then
    timeout $(tb 200) node test/bench/guided-decoding.js dist "$MODEL" --backend cuda --new 64 > "$OUT/guided-7b.log" 2>&1
    echo "guided (7B, cuda) rc $? ($(el))"; tail -8 "$OUT/guided-7b.log"
  fi
fi
if [ "${W4_WIDE:-0}" = 1 ]; then
  LMF_BENCH_W4_ONLY=1 LMF_BENCH_W4_WIDE_ONLY=1 timeout $(tb 150) $B/bench_decoder > "$OUT/bench_w4_wide.log" 2>&1
  echo "bench_decoder (w4 wide) rc $? ($(el))"
  for v in ${WIDE_TB:-}; do
    LMFLEET_W4A16_WIDE=$v timeout $(tb 60) $B/test_backend > "$OUT/test_backend_wide$v.log" 2>&1
    echo "test_backend LMFLEET_W4A16_WIDE=$v rc $? ($(el)): $(tail -1 "$OUT/test_backend_wide$v.log")"
  done
fi
if [ "${NCU:-0}" = 1 ]; then
  for shape in ${NCU_SHAPES:-gate_up down}; do
    ncu_w4 "$shape" "${NCU_M:-64}" "-$shape"
    cat "$OUT/ncu_table-$shape.md" 2> /dev/null
  done
fi
gpu_log_summary
cat "$OUT/device-test.txt"  # last, so the output's tail keeps it
