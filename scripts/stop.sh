#!/usr/bin/env bash
# Stops what scripts/quickstart.sh started (SIGTERM: workers finish or hand back their jobs).
cd "$(dirname "$0")/.."
for f in var/run/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null && echo "stopped $(basename "$f" .pid) ($pid)"; rm -f "$f"
done
