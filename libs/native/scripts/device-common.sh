# Sourced by the device scripts (device-w4k.sh, device-engine-ab.sh): the repo root as the working directory, $OUT,
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
