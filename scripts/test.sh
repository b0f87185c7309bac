#!/usr/bin/env bash
# The project's whole test suite, runnable on a fresh machine that has only Node 20:
# installs dependencies (which builds the native CPU backend), starts Postgres/Redis where needed,
# type-checks, then runs every jest project (unit, integration, e2e). Extra args go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[test] installing dependencies (npm ci)"; npm ci --no-audit --no-fund
fi
[ -n "$(ls libs/native/build/cpu/Release/*.node 2>/dev/null)" ] || npm run build:native
# The dashboard's e2e drives Debian's chromium (playwright-core downloads no browser of its own).
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing chromium (apt-get)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "[test] build the dashboard"; npm run -s build:dashboard
. scripts/services.sh
echo "[test] DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
echo "[test] type-check"; npx tsc -p tsconfig.json --noEmit
# the build's own config too (what `npm run quickstart` / `npm run build:ts` compile: no jest types there)
npx tsc -p tsconfig.build.json --noEmit
mkdir -p var
set +e
npx jest --ci --json --outputFile=var/jest-results.json "$@"
rc=$?
set -e
node -e '
  const r = require("./var/jest-results.json");
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' || true
exit $rc
