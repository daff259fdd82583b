#!/usr/bin/env bash
# The stack on this machine, no containers: a real Apache Kafka broker (KRaft, jars from
# Maven Central, Java 17) and a real PostgreSQL (Debian's package), on loopback ports
# with their data under the tree's ignored .cache/stack/.
#
#   stack/local.sh up     install what is missing (idempotent, cached) and start both
#   stack/local.sh down   stop what `up` started (by PID)
#   stack/local.sh env    print the RCA_ settings that point `rca serve --role api` and
#                         `rca worker STAGE` at them:  set -a; eval "$(stack/local.sh env)"
#   stack/local.sh env-single   the same for ONE `rca serve` process with its telemetry
#                         in ClickHouse (chDB, in process, under .cache/stack/chdb)
#
# Telemetry: PostgreSQL for the multi-process run (chDB locks its directory to one
# process), ClickHouse when RCA_CLICKHOUSE_URL names a server (stack/lib/clickhouse.sh).
# Ports and data dirs: see stack/lib/kafka.sh (RCA_KAFKA_PORT, 19092) and
# stack/lib/postgres.sh (RCA_PG_PORT, 55432).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/kafka.sh
source "$here/lib/kafka.sh"
# shellcheck source=lib/clickhouse.sh
source "$here/lib/clickhouse.sh"
have_pg=0
if [ -f "$here/lib/postgres.sh" ]; then
  # shellcheck source=/dev/null
  source "$here/lib/postgres.sh"
  have_pg=1
fi

case "${1:-}" in
  up)
    kafka_install
    kafka_up
    if [ "$have_pg" = 1 ]; then pg_install; pg_up; fi
    echo "stack up: kafka 127.0.0.1:$(_kafka_port)$([ "$have_pg" = 1 ] && echo ", postgresql 127.0.0.1:$(_pg_port)")" >&2
    ;;
  down)
    kafka_down
    if [ "$have_pg" = 1 ]; then pg_down; fi
    ;;
  env)
    kafka_env
    if [ "$have_pg" = 1 ]; then echo "RCA_STORE__BACKEND=postgres"; pg_env; fi
    # ---- ClickHouse telemetry (stack/lib/clickhouse.sh) ----
    if [ "$have_pg" = 1 ]; then clickhouse_env; fi
    ;;
  env-single)
    # ---- one process: PostgreSQL state + ClickHouse telemetry in chDB (stack/lib/clickhouse.sh) ----
    kafka_env
    if [ "$have_pg" = 1 ]; then echo "RCA_STORE__BACKEND=postgres"; pg_env; fi
    clickhouse_env_single
    ;;
  *)
    sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
