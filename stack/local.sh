#!/usr/bin/env bash
# The stack on this machine, no containers: a real Apache Kafka broker (KRaft, jars from
# Maven Central, Java 17), PostgreSQL, Redis, Prometheus and Alertmanager (Debian's
# packages), on loopback ports with their data under the tree's ignored .cache/stack/.
#
#   stack/local.sh up     install what is missing (idempotent, cached) and start them all
#   stack/local.sh down   stop what `up` started (by PID)
#   stack/local.sh env    print the RCA_ settings that point `rca serve --role api` and
#                         `rca worker STAGE` at them:  set -a; eval "$(stack/local.sh env)"
#   stack/local.sh env-single   the same for ONE `rca serve` process with its telemetry
#                         in ClickHouse (chDB, in process, under .cache/stack/chdb)
#
# Telemetry: PostgreSQL for the multi-process run (chDB locks its directory to one
# process), ClickHouse when RCA_CLICKHOUSE_URL names a server (stack/lib/clickhouse.sh).
# Ports (environment) and data dirs: stack/lib/kafka.sh (RCA_KAFKA_PORT, 19092),
# stack/lib/postgres.sh (RCA_PG_PORT, 55432), stack/lib/redis.sh (RCA_REDIS_PORT, 56379),
# stack/lib/prometheus.sh (RCA_PROMETHEUS_PORT 19090, RCA_ALERTMANAGER_PORT 19095, and
# the scrape targets). RCA_STACK_MONITORING=0 leaves Prometheus and Alertmanager out.
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
# shellcheck source=lib/redis.sh
source "$here/lib/redis.sh"
# shellcheck source=lib/prometheus.sh
source "$here/lib/prometheus.sh"
monitoring="${RCA_STACK_MONITORING:-1}"

case "${1:-}" in
  up)
    kafka_install
    kafka_up
    if [ "$have_pg" = 1 ]; then pg_install; pg_up; fi
    redis_install
    redis_up
    if [ "$monitoring" = 1 ]; then prom_install; prom_up; fi
    echo "stack up: kafka 127.0.0.1:$(_kafka_port)$([ "$have_pg" = 1 ] && echo ", postgresql 127.0.0.1:$(_pg_port)"), redis 127.0.0.1:$(_redis_port)$([ "$monitoring" = 1 ] && echo ", prometheus 127.0.0.1:$(_prom_port), alertmanager 127.0.0.1:$(_am_port)")" >&2
    ;;
  down)
    prom_down
    redis_down
    kafka_down
    if [ "$have_pg" = 1 ]; then pg_down; fi
    ;;
  env)
    kafka_env
    if [ "$have_pg" = 1 ]; then echo "RCA_STORE__BACKEND=postgres"; pg_env; fi
    redis_env
    # ---- ClickHouse telemetry (stack/lib/clickhouse.sh) ----
    if [ "$have_pg" = 1 ]; then clickhouse_env; fi
    ;;
  env-single)
    # ---- one process: PostgreSQL state + ClickHouse telemetry in chDB (stack/lib/clickhouse.sh) ----
    kafka_env
    if [ "$have_pg" = 1 ]; then echo "RCA_STORE__BACKEND=postgres"; pg_env; fi
    clickhouse_env_single
    redis_env
    ;;
  *)
    sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
