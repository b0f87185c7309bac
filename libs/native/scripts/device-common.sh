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
