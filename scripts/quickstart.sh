#!/usr/bin/env bash
# Brings the platform up on this machine and runs its main job end to end on a small model:
#   install (builds the native engine) -> Postgres/Redis -> API + worker-quant + worker-infer ->
#   register the model -> eval fp16 -> quantize pipeline (calibrate -> auto_awq W4 g128 -> convert -> eval)
#   -> infer on the quantized workspace (an answer) -> deploy it and stream an OpenAI chat completion
#   -> lineage, jobs, artifacts, metrics.
# Works on a fresh machine with only Node 20 (Postgres/Redis are installed and started where missing).
# The platform keeps running afterwards: API on http://127.0.0.1:$PORT (OpenAPI at /docs);
# `npm run stop` stops it. Logs: var/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PORT=${PORT:-3000}
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "dependencies"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi
npm run -s build:native   # incremental: a no-op when the addon is up to date, a rebuild after a pull
npm run -s build:ts
npm run -s build:dashboard

step "Postgres and Redis"
. scripts/services.sh
echo "DATABASE_URL=$DATABASE_URL"; echo "REDIS_URL=$REDIS_URL"

step "model"
mkdir -p var/models var/artifacts var/logs var/run
if [ -n "${MODEL_DIR:-}" ]; then :
elif [ -d "$ROOT/../shared/models/tiny-qwen2-pydocs" ]; then MODEL_DIR=$(cd "$ROOT/../shared/models/tiny-qwen2-pydocs" && pwd)
else
  MODEL_DIR="$ROOT/var/models/tiny-qwen2"
  [ -f "$MODEL_DIR/config.json" ] || node -e 'require("./dist/libs/engine/src").writeTinyModel(process.argv[1], { arch: "qwen2", seed: 1, hiddenSize: 256, intermediateSize: 512, numLayers: 2 })' "$MODEL_DIR"
fi
if [ -z "${DATASET:-}" ]; then
  if [ -f "$MODEL_DIR/eval.txt" ]; then DATASET="$MODEL_DIR/eval.txt"
  else DATASET="$ROOT/var/models/sample.txt"; cat README.md libs/*/README.md 2>/dev/null >"$DATASET"; fi
fi
echo "model: $MODEL_DIR"; echo "eval text: $DATASET"
export MODEL_ROOTS="$(dirname "$MODEL_DIR"),$(dirname "$DATASET")"
export ARTIFACT_DIR="$ROOT/var/artifacts"
export ENGINE_BACKEND=${ENGINE_BACKEND:-auto}

step "platform: api + worker-quant + worker-infer"
bash scripts/stop.sh >/dev/null 2>&1 || true
for app in api worker-quant worker-infer; do
  nohup node "dist/apps/$app/src/main.js" >"var/logs/$app.log" 2>&1 &
  echo $! >"var/run/$app.pid"
  echo "$app pid $(cat var/run/$app.pid) (log var/logs/$app.log)"
done
for i in $(seq 1 120); do
  node -e 'fetch(`http://127.0.0.1:${process.env.PORT}/health`).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' && break
  sleep 0.5
done

step "main job: register -> eval -> calibrate -> auto_awq -> convert -> eval -> answer -> deploy + chat"
node scripts/quickstart-client.js "http://127.0.0.1:$PORT" "$MODEL_DIR" "$DATASET"
echo
echo "The platform is still running: dashboard http://127.0.0.1:$PORT/ (queues at /admin/queues), API docs http://127.0.0.1:$PORT/docs. Stop it with: npm run stop"
