# Sourced by the device scripts (device-w4k.sh, device-engine-ab.sh, device-verify.sh): the repo root as the working directory, $OUT,
# and the time box helpers. Set BUDGET (s) and TB_KEEP (s kept for the summary) before sourcing, or take the defaults.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
OUT=${OUT:-/tmp/lmf-device-out}
mkdir -p "$OUT"
cd "$ROOT"
T0=$(date +%s)
BUDGET=${BUDGET:-540}
TB_KEEP=${TB_KEEP:-15}
# el: seconds since the script started
el() { echo "$(( $(date +%s) - T0 )) s"; }
# tb WANT: a step's timeout, WANT seconds or what is left of BUDGET (TB_KEEP s kept for the summary), at least 1
tb() { local left=$(( BUDGET - TB_KEEP - ($(date +%s) - T0) )); [ "$left" -lt 1 ] && left=1; echo $(( $1 < left ? $1 : left )); }
# gpu_log_start / gpu_log_summary: the GPU's clocks, power, temperature, utilization and throttle reasons once a second
# into $OUT/smi.csv while the script runs, and a summary of the busy samples (utilization >= 50%): a throttled or
# shared GPU shows as a low SM clock or a hardware slowdown reason beside the rows it produced.
gpu_log_start() {
  command -v nvidia-smi > /dev/null || return 0
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu,clocks_throttle_reasons.active \
    --format=csv,noheader,nounits -l 1 > "$OUT/smi.csv" 2>&1 &
  GPU_LOG_PID=$!
  trap 'kill "$GPU_LOG_PID" 2> /dev/null' EXIT  # never outlive the script (the device call waits for its children)
}
gpu_log_summary() {
  [ -n "${GPU_LOG_PID:-}" ] && kill "$GPU_LOG_PID" 2> /dev/null
  [ -s "$OUT/smi.csv" ] || return 0
  # reasons: 0x1 idle, 0x4 software power cap (both normal); 0x8 hardware slowdown, 0x20 / 0x40 thermal, 0x80 power brake
  python3 - "$OUT/smi.csv" <<'PY'
import sys
busy, bad = [], {}
for line in open(sys.argv[1]):
    f = [x.strip() for x in line.split(',')]
    try:
        sm, pw, temp, util, why = float(f[1]), float(f[3]), float(f[4]), float(f[5]), int(f[6], 16)
    except (ValueError, IndexError):
        continue
    if util >= 50:
        busy.append((sm, pw, temp))
        if why & 0xE8:
            bad[f[6]] = bad.get(f[6], 0) + 1
if not busy:
    print('GPU log: no busy samples')
else:
    c = sorted(b[0] for b in busy)
    s = '; '.join(f'{k} x{v}' for k, v in bad.items())
    print(f'GPU log: {len(busy)} busy samples, SM clock median {c[(len(c) - 1) // 2]:.0f} MHz (min {c[0]:.0f}), '
          f'max power {max(b[1] for b in busy):.0f} W, max temp {max(b[2] for b in busy):.0f} C; '
          + (f'WARNING hardware slowdown: {s}' if s else 'no hardware slowdown'))
PY
}

# ncu_w4 SHAPE M TAG: Nsight Compute over bench_decoder's W4 driver (LMF_BENCH_W4_NCU=1: one 7B linear SHAPE =
# gate_up|down|qkv|o at M rows, each W4 kernel launched once) with a fixed metric list (DRAM throughput, shared-load
# wavefronts / bank conflicts, stall reasons, issued IPC, occupancy, registers) -> $OUT/ncu_raw$TAG.csv and the compact
# $OUT/ncu_table$TAG.md (scripts/ncu_table.py); if that list is refused, ncu's own sections -> ncu_sections$TAG.txt.
# Needs $B (the device-test build dir with bench_decoder). Capped at NCU_TIMEOUT (default 150 s) and the budget.
ncu_w4() {
  local shape=$1 m=$2 tag=$3 NCU_BIN metrics r
  NCU_BIN=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -z "$NCU_BIN" ]; then echo "ncu: not found"; return 0; fi
  metrics="gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum.per_second"
  metrics="$metrics,sm__inst_issued.avg.per_cycle_active,smsp__issue_active.avg.pct_of_peak_sustained_active"
  metrics="$metrics,smsp__warps_eligible.avg.per_cycle_active,sm__warps_active.avg.pct_of_peak_sustained_active"
  metrics="$metrics,launch__registers_per_thread,launch__grid_size,smsp__sass_inst_executed_op_shared_ld.sum"
  metrics="$metrics,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum"
  metrics="$metrics,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum"
  metrics="$metrics,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
  for r in long_scoreboard short_scoreboard mio_throttle lg_throttle math_pipe_throttle barrier not_selected selected \
           wait no_instruction dispatch_stall; do
    metrics="$metrics,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
  done
  local args=(--clock-control none -k "regex:stream_read|w4a16_mma_kernel|w4a16_gemv|w4a16_wide" --launch-count 8)
  LMF_BENCH_W4_NCU=1 LMF_BENCH_W4_NCU_SHAPE=$shape LMF_BENCH_W4_NCU_M=$m timeout $(tb ${NCU_TIMEOUT:-150}) "$NCU_BIN" \
    "${args[@]}" --csv --page raw --metrics "$metrics" $B/bench_decoder > "$OUT/ncu_raw$tag.csv" 2> "$OUT/ncu$tag.log"
  echo "ncu metrics ($shape, m = $m) rc $? ($(el))"
  if ! python3 libs/native/scripts/ncu_table.py "$OUT/ncu_raw$tag.csv" "$shape m=$m" > "$OUT/ncu_table$tag.md" 2>&1; then
    grep -e "==ERROR==" -e "==WARNING==" "$OUT/ncu_raw$tag.csv" "$OUT/ncu$tag.log" | head -5
    LMF_BENCH_W4_NCU=1 LMF_BENCH_W4_NCU_SHAPE=$shape LMF_BENCH_W4_NCU_M=$m timeout $(tb ${NCU_TIMEOUT:-150}) "$NCU_BIN" \
      "${args[@]}" --section SpeedOfLight --section MemoryWorkloadAnalysis_Tables --section WarpStateStats \
      --section Occupancy --section LaunchStats --section SchedulerStats $B/bench_decoder > "$OUT/ncu_sections$tag.txt" 2>> "$OUT/ncu$tag.log"
    echo "ncu sections ($shape, m = $m) rc $? ($(el))"
  fi
}
# build_addon_cuda DIR: configures and builds the addon's cuda variant (sm_90) into DIR, log in $OUT/addon-build.log;
# the caller runs it in the background (`build_addon_cuda DIR & ADDON_PID=$!`) and waits for it
build_addon_cuda() {
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  { cmake -S libs/native -B "$1" -DLMFLEET_VARIANT=cuda -DCMAKE_BUILD_TYPE=Release \
      -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" -DCMAKE_JS_INC="$ROOT/node_modules/node-api-headers/include" \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build "$1" -j 16; } > "$OUT/addon-build.log" 2>&1
}
