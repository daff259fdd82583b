# shellcheck shell=bash
# Redis for stack mode and the tests: Debian's redis-server, our own port and data dir.
#
# Source this file, then call:
#   redis_install  apt-get install redis-server (idempotent; apt-get update once if needed)
#   redis_up       start redis-server on 127.0.0.1:$RCA_REDIS_PORT with data in $RCA_REDIS_DATA
#   redis_down     stop the server started by redis_up (by its PID)
#   redis_env      print RCA_REDIS__URL=... (and the backends that use it)
#
# Settings (environment): RCA_REDIS_PORT (56379), RCA_REDIS_DATA (<repo>/.cache/stack/redis),
# RCA_REDIS_MAXMEMORY (256mb; least recently used keys go first past it). Loopback only, no
# password: the data are rate-limit windows and cached answers, all disposable.

_REDIS_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_REDIS_ROOT="$(cd "$_REDIS_LIB_DIR/../.." && pwd)"

_redis_port() { echo "${RCA_REDIS_PORT:-56379}"; }
_redis_data() { echo "${RCA_REDIS_DATA:-$_REDIS_ROOT/.cache/stack/redis}"; }

redis_install() {
  command -v redis-server >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  echo "redis_install: installing Debian's redis-server" >&2
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends redis-server >/dev/null 2>&1; then
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends redis-server >/dev/null
  fi
  command -v redis-server >/dev/null 2>&1 || { echo "redis_install: redis-server not found after install" >&2; return 1; }
}

_redis_pid() {
  local f pid
  f="$(_redis_data)/redis.pid"
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

_redis_ready() { redis-cli -h 127.0.0.1 -p "$(_redis_port)" ping 2>/dev/null | grep -q PONG; }

redis_up() {
  local data port
  data="$(_redis_data)"; port="$(_redis_port)"
  command -v redis-server >/dev/null 2>&1 || { echo "redis_up: run redis_install first" >&2; return 1; }
  _redis_pid >/dev/null && return 0
  if _redis_ready; then
    echo "redis_up: reusing the Redis already on 127.0.0.1:$port (not started from $data)" >&2
    return 0
  fi
  mkdir -p "$data"
  # no `daemonize`: the PID of the process we start is the server's
  nohup redis-server --bind 127.0.0.1 --port "$port" --dir "$data" --dbfilename dump.rdb \
    --save 300 100 --appendonly no --maxmemory "${RCA_REDIS_MAXMEMORY:-256mb}" --maxmemory-policy allkeys-lru \
    --logfile "$data/redis.log" >/dev/null 2>&1 &
  echo $! > "$data/redis.pid"
  local i
  for i in $(seq 1 100); do
    _redis_ready && { echo "redis_up: Redis on 127.0.0.1:$port (pid $(cat "$data/redis.pid"), data $data)" >&2; return 0; }
    _redis_pid >/dev/null || { tail -n 20 "$data/redis.log" >&2; return 1; }
    sleep 0.1
  done
  echo "redis_up: Redis did not answer on port $port in 10 s (see $data/redis.log)" >&2
  return 1
}

redis_down() {
  local pid data
  data="$(_redis_data)"
  pid="$(_redis_pid)" || return 0
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$data/redis.pid"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$data/redis.pid"
}

redis_url() { echo "redis://127.0.0.1:$(_redis_port)/0"; }

redis_env() {
  echo "RCA_REDIS__URL=$(redis_url)"
  echo "RCA_LIMITS__BACKEND=redis"
  echo "RCA_CACHE__BACKEND=redis"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) redis_install ;;
    up) redis_install && redis_up ;;
    down) redis_down ;;
    env) redis_env ;;
    *) echo "usage: $0 install|up|down|env" >&2; exit 2 ;;
  esac
fi
