# shellcheck shell=bash
# PostgreSQL for stack mode and the tests: Debian's package, our own data dir and port.
#
# Source this file, then call:
#   pg_install   apt-get install postgresql (idempotent; apt-get update once if needed)
#   pg_up        initdb (first time) into $RCA_PG_DATA and start on 127.0.0.1:$RCA_PG_PORT
#   pg_down      stop the server started by pg_up (by the PID in postmaster.pid)
#   pg_env       print RCA_STORE__POSTGRES_DSN=... for the running server
#   pg_dsn       print the DSN only
#
# Settings (environment): RCA_PG_PORT (55432), RCA_PG_DATA (<repo>/.cache/stack/pg),
# RCA_PG_DB (rca), RCA_PG_USER (rca). The server trusts local connections and listens on
# loopback only. initdb refuses to run as root, so as root the server runs as the
# `postgres` system user (created by the Debian package) and owns the data dir.

_PG_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_PG_ROOT="$(cd "$_PG_LIB_DIR/../.." && pwd)"

_pg_port() { echo "${RCA_PG_PORT:-55432}"; }
_pg_data() { echo "${RCA_PG_DATA:-$_PG_ROOT/.cache/stack/pg}"; }
_pg_db() { echo "${RCA_PG_DB:-rca}"; }
_pg_user() { echo "${RCA_PG_USER:-rca}"; }

_pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null)"
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  fi
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

# Run a PostgreSQL server binary as the data dir's owner (the `postgres` user when root).
_pg_as_owner() {
  if [ "$(id -u)" = "0" ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_install() {
  if _pg_bindir >/dev/null; then
    return 0
  fi
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  echo "pg_install: installing Debian's postgresql" >&2
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
  fi
  _pg_bindir >/dev/null || { echo "pg_install: initdb not found after install" >&2; return 1; }
}

_pg_pid() {
  local pidfile
  pidfile="$(_pg_data)/postmaster.pid"
  [ -f "$pidfile" ] || return 1
  local pid
  pid="$(head -n 1 "$pidfile" 2>/dev/null)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

_pg_ensure_db() {  # bin port user db
  if ! "$1/psql" -h 127.0.0.1 -p "$2" -U "$3" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$4'" | grep -q 1; then
    "$1/createdb" -h 127.0.0.1 -p "$2" -U "$3" "$4"
  fi
}

pg_up() {
  local bin data port db user
  bin="$(_pg_bindir)" || { echo "pg_up: PostgreSQL is not installed (run pg_install)" >&2; return 1; }
  data="$(_pg_data)"; port="$(_pg_port)"; db="$(_pg_db)"; user="$(_pg_user)"
  if ! _pg_pid >/dev/null; then
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$data"
      [ "$(id -u)" = "0" ] && chown postgres: "$data" && chmod 700 "$data"
      echo "pg_up: initdb $data" >&2
      _pg_as_owner "$bin/initdb" -D "$data" -U "$user" --auth=trust -E UTF8 --locale=C.UTF-8 >"$data.initdb.log" 2>&1 \
        || { cat "$data.initdb.log" >&2; return 1; }
    fi
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
      if "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc "SELECT 1" >/dev/null 2>&1; then
        echo "pg_up: reusing the PostgreSQL already on 127.0.0.1:$port (not started from $data)" >&2
        _pg_ensure_db "$bin" "$port" "$user" "$db"
        return $?
      fi
      echo "pg_up: port $port is taken by another server; set RCA_PG_PORT" >&2
      return 1
    fi
    rm -f "$data/postmaster.pid"
    # fsync off: a test/dev server whose data is disposable (a crash of the machine may lose it)
    _pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null || { tail -n 20 "$data/server.log" >&2; return 1; }
  fi
  _pg_ensure_db "$bin" "$port" "$user" "$db" || return 1
  echo "pg_up: PostgreSQL on 127.0.0.1:$port (pid $(_pg_pid), data $data)" >&2
}

pg_down() {
  local pid data
  data="$(_pg_data)"
  pid="$(_pg_pid)" || { echo "pg_down: not running" >&2; return 0; }
  kill -INT "$pid"  # fast shutdown: roll back open transactions, then stop
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { echo "pg_down: stopped (pid $pid)" >&2; return 0; }
    sleep 0.1
  done
  echo "pg_down: pid $pid still running after 10 s (see $data/server.log)" >&2
  return 1
}

pg_dsn() {
  echo "postgresql://$(_pg_user)@127.0.0.1:$(_pg_port)/$(_pg_db)"
}

pg_env() {
  echo "RCA_STORE__POSTGRES_DSN=$(pg_dsn)"
}

# `bash stack/lib/postgres.sh up|down|env|install` works too.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) pg_install ;;
    up) pg_install && pg_up ;;
    down) pg_down ;;
    env) pg_env ;;
    dsn) pg_dsn ;;
    *) echo "usage: $0 install|up|down|env|dsn" >&2; exit 2 ;;
  esac
fi
