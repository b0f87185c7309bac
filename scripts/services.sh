#!/usr/bin/env bash
# Makes sure Postgres and Redis are reachable and exports DATABASE_URL and REDIS_URL.
# Source it (`. scripts/services.sh`) or run it (it prints the two URLs).
#  - DATABASE_URL / REDIS_URL already set: used as they are.
#  - Otherwise, a server already listening on 127.0.0.1:5432 / :6379 is used.
#  - Otherwise the Debian packages are installed where missing (apt-get) and the servers started here.
# Also creates the `lmfleet` database when it does not exist.
set -u
_lmf_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
_lmf_log() { echo "[services] $*" >&2; }
_lmf_apt() {
  if [ "$(id -u)" != 0 ]; then _lmf_log "need root to apt-get install $*; install them or set DATABASE_URL/REDIS_URL"; return 1; fi
  if [ -z "${_LMF_APT_UPDATED:-}" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && _LMF_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

_lmf_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then return 0; fi
  if _lmf_listening 5432; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/lmfleet"
  else
    _lmf_log "no Postgres on 127.0.0.1:5432: starting one"
    command -v pg_ctlcluster >/dev/null 2>&1 || _lmf_apt postgresql || return 1
    local ver; ver=$(ls /etc/postgresql | sort -V | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 2>&1 || pg_ctlcluster "$ver" main start >&2
    for _ in $(seq 1 30); do _lmf_listening 5432 && break; sleep 1; done
    _lmf_listening 5432 || { _lmf_log "Postgres did not start"; return 1; }
    # A fresh Debian cluster wants a password over TCP: give the postgres role one.
    runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'lmfleet'" >&2
    export DATABASE_URL="postgres://postgres:lmfleet@127.0.0.1:5432/lmfleet"
  fi
  node -e '
    const { Client } = require("pg");
    const url = new URL(process.env.DATABASE_URL); const db = url.pathname.slice(1) || "lmfleet";
    url.pathname = "/postgres";
    const c = new Client({ connectionString: url.toString() });
    c.connect().then(async () => {
      const r = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [db]);
      if (!r.rowCount) await c.query(`CREATE DATABASE "${db}"`);
      await c.end();
    }).catch((e) => { console.error("[services] Postgres: " + e.message); process.exit(1); });
  ' || return 1
}

_lmf_redis() {
  if [ -n "${REDIS_URL:-}" ]; then return 0; fi
  if ! _lmf_listening 6379; then
    _lmf_log "no Redis on 127.0.0.1:6379: starting one"
    command -v redis-server >/dev/null 2>&1 || _lmf_apt redis-server || return 1
    mkdir -p /tmp/lmfleet-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/lmfleet-redis --logfile /tmp/lmfleet-redis/redis.log >&2
    for _ in $(seq 1 30); do _lmf_listening 6379 && break; sleep 1; done
    _lmf_listening 6379 || { _lmf_log "Redis did not start"; return 1; }
  fi
  export REDIS_URL="redis://127.0.0.1:6379"
}

_lmf_postgres && _lmf_redis
_lmf_rc=$?
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $_lmf_rc = 0 ] && { echo "DATABASE_URL=$DATABASE_URL"; echo "REDIS_URL=$REDIS_URL"; }
  exit $_lmf_rc
fi
return $_lmf_rc
