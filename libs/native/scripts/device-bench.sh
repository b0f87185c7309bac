#!/usr/bin/env bash
# On the GPU machine: the engine benchmark of the CUDA backend against transformers on the same model.
#   1. builds the CUDA objects and src/cuda/engine_bench.cu (device-test.sh with SKIP_TESTS=1)
#   2. writes a random Llama-2-7B-shaped fp16 model (test/bench/make_random_model.py) into /tmp
#   3. engine_bench: native-cpu's Model + KvCache, CudaDecoder steps (graphs), GPU sampling, batch 1/16/64,
#      128-token prompts, 128 new tokens; 2048-token prefill
#   4. test/bench/hf_baseline.py: transformers' eager generate on the same directory, same shapes
#   5. one table (test/bench/bench_table.py), also written to $OUT/RESULTS.md
# Run from the repo root: bash libs/native/scripts/device-bench.sh [--layers N] (N < 32 for a quick check)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
LAYERS=32
[ "${1:-}" = "--layers" ] && LAYERS=$2
MODEL=${MODEL:-/tmp/lmf-random-7b-$LAYERS}
export PYTHONUNBUFFERED=1
SKIP_TESTS=1 EXTRA_CU=src/cuda/engine_bench.cu bash "$ROOT/libs/native/scripts/device-test.sh" || exit 1
cd "$ROOT"
t0=$(date +%s)
[ -f "$MODEL/config.json" ] || python3 test/bench/make_random_model.py "$MODEL" --layers "$LAYERS" > "$OUT/make_model.log" 2>&1 ||
  { cat "$OUT/make_model.log"; exit 1; }
echo "model: $(tail -1 "$OUT/make_model.log" 2>/dev/null) ($(( $(date +%s) - t0 )) s)"
python3 test/bench/safetensors_manifest.py "$MODEL" > "$OUT/manifest.txt" || exit 1
libs/native/build/device-test/engine_bench "$OUT/manifest.txt" > "$OUT/engine.log" 2>&1
echo "engine_bench rc $?"; grep -v ENGINE_JSON "$OUT/engine.log" | tail -8
python3 test/bench/hf_baseline.py "$MODEL" --reps 2 > "$OUT/hf.log" 2>&1
echo "hf_baseline rc $?"; grep -v "^{" "$OUT/hf.log" | grep -v -i warn | tail -6
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
python3 test/bench/bench_table.py "$OUT/engine.log" "$OUT/hf.log" --card "$CARD" --commit "${COMMIT:-unknown}" | tee "$OUT/RESULTS.md"
