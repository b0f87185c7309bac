#!/usr/bin/env bash
# On the GPU machine: hunts test_backend's intermittent fp16 decoder mismatch (~2 in 100 runs, session 17). Builds the
# device-test binaries (device-test.sh, tests skipped), then runs `test_backend SEED --loop N` (the first fp16 decoder
# case N times, each failing step re-run on both backends: which side changed its answer for the same input) under
# each switch set in CONFIGS, LOOPS runs each, several processes at once (PAR), and compute-sanitizer (memcheck,
# initcheck, racecheck, synccheck) on one loop run each. Which switches make the failures go away says where the race is.
#   source .device/bootstrap.sh; bash libs/native/scripts/device-race.sh
# Env: LOOPS (default 150), PAR (processes per config, default 4), CONFIGS (";"-separated env assignments, "-" = none),
# FULL (whole test_backend runs first, default 0), REBUILD=0 (keep a warm machine's build) or tb (recompile
# test_backend.cu only), SAN_TOOLS (default all
# four), SKIP_SANITIZER=1, BUDGET (s, default 570). Logs under $OUT.
set -uo pipefail
BUDGET=${BUDGET:-570} TB_KEEP=10
source "$(dirname "$0")/device-common.sh"
B=libs/native/build/device-test
gpu_log_start
if [ -x $B/test_backend ] && [ "${REBUILD:-1}" = tb ]; then  # a warm machine's build: test_backend.cu alone again
  ( cd libs/native && nvcc -std=c++17 -O3 -arch=sm_90 -I src -DLMF_HAVE_CUBLAS -c src/cuda/test_backend.cu -o build/device-test/test_backend.cu.o &&
    nvcc -arch=sm_90 $(ls build/device-test/*.cu.o | grep -v -e test_ -e bench_ -e engine_bench) $(ls build/device-test/cpu_*.o) \
      build/device-test/test_backend.cu.o -lcublas -lcublasLt -lcudart -lpthread -o build/device-test/test_backend ) > "$OUT/rebuild.log" 2>&1
  echo "test_backend rebuilt rc $? ($(el))"
elif [ ! -x $B/test_backend ] || [ "${REBUILD:-1}" = 1 ]; then
  SKIP_TESTS=1 SKIP_BENCH=1 bash libs/native/scripts/device-test.sh > "$OUT/device-test.txt" 2>&1
  echo "build rc $? ($(el))"; tail -3 "$OUT/device-test.txt"
fi
LOOPS=${LOOPS:-150} PAR=${PAR:-4}
summary=()
# FULL=N: the whole test_backend N times first (PAR processes at a time), as device-test.sh runs it
if [ "${FULL:-0}" -gt 0 ]; then
  fp=()  # wait on these only: a bare wait would also wait for gpu_log_start's logger, which never ends
  for r in $(seq 1 $FULL); do
    timeout $(tb 120) $B/test_backend $(( $$ * 1000 + r * 7919 + RANDOM )) > "$OUT/full-$r.log" 2>&1 &
    fp+=($!)
    if [ ${#fp[@]} -ge $PAR ]; then for pid in "${fp[@]}"; do wait $pid; done; fp=(); fi
  done
  for pid in "${fp[@]}"; do wait $pid; done
  ffail=$(grep -l "FAIL\|ERROR" "$OUT"/full-*.log | wc -l)
  summary+=("full test_backend: $ffail of $FULL runs had a failing row ($(el))")
  echo "${summary[-1]}"
  for f in $(grep -l "FAIL\|ERROR" "$OUT"/full-*.log | head -6); do
    head -1 "$f"; grep -e "FAIL" -e "^DIAG" -e ERROR "$f" | cut -c1-400
  done
fi
CONFIGS=${CONFIGS:-"-;LMFLEET_PDL=0;LMFLEET_CUDA_GRAPHS=0;LMFLEET_ATTN_PREFETCH=0 LMFLEET_PDL_PRELOAD=0;CUDA_LAUNCH_BLOCKING=1"}
IFS=';' read -ra CFGS <<< "$CONFIGS"
ci=0
[ "$LOOPS" -gt 0 ] || CFGS=()
for cfg in "${CFGS[@]}"; do
  ci=$((ci + 1))
  envs=(); [ "$cfg" != "-" ] && read -ra envs <<< "$cfg"
  per=$(( (LOOPS + PAR - 1) / PAR ))
  pids=()
  for p in $(seq 1 $PAR); do
    seed=$(( ci * 1000000 + p * 10000 + RANDOM ))
    env "${envs[@]}" timeout $(tb 150) $B/test_backend $seed --loop $per > "$OUT/loop-c$ci-p$p.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait $pid; done
  fails=$(cat "$OUT"/loop-c$ci-p*.log | grep -c "^LOOP FAIL")
  runs=$(cat "$OUT"/loop-c$ci-p*.log | grep -c "^| decoder")
  summary+=("config [$cfg]: $fails of $runs runs failed ($(el))")
  echo "${summary[-1]}"
  cat "$OUT"/loop-c$ci-p*.log | grep -e "^DIAG" -e "^LOOP FAIL" -e ERROR | head -12
done
if [ "${SKIP_SANITIZER:-0}" != 1 ]; then
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$CS" ]; then echo "compute-sanitizer: not found"; else
    for tool in ${SAN_TOOLS:-memcheck initcheck synccheck racecheck}; do
      timeout $(tb 120) "$CS" --tool $tool --print-limit ${SAN_LIMIT:-2000} $B/test_backend 4242 --loop 1 > "$OUT/sanitizer-$tool.log" 2>&1
      r=$?
      summary+=("sanitizer $tool rc $r: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.log" | tail -1) ($(el))")
      echo "${summary[-1]}"
      # distinct (what, kernel) pairs, most frequent first: initcheck reports each uninitialized read per thread
      grep -A1 -E "^========= (Uninitialized|Invalid|Race|Barrier|Warp)" "$OUT/sanitizer-$tool.log" | grep -v -e "^--" |
        paste - - | sed -E 's/=========\s+//g; s/\(.*//' | sort | uniq -c | sort -rn | head -12
    done
  fi
fi
gpu_log_summary
echo "== summary =="
printf '%s\n' "${summary[@]}"
