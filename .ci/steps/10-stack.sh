# shellcheck shell=bash
# Stack mode services for the tests: a real Apache Kafka broker (KRaft; jars from Maven
# Central, cached under .cache/kafka), a real PostgreSQL, Redis, Prometheus and
# Alertmanager (Debian's packages, installed here when missing), started by stack/local.sh
# on loopback ports with data under .cache/stack/. The Redis and Prometheus tests
# (tests/shared, tests/ops) start their own private servers from the installed packages.
#
# Only the connection settings are exported (RCA_BUS__BOOTSTRAP_SERVERS and, when the
# PostgreSQL script is present, RCA_STORE__POSTGRES_DSN): the backends stay the embedded
# defaults for every other test, and the stack tests choose kafka/postgres/redis themselves.
stack/local.sh up
while IFS= read -r line; do
  case "$line" in
    RCA_BUS__BOOTSTRAP_SERVERS=*|RCA_STORE__POSTGRES_DSN=*) export "${line?}" ;;
  esac
done < <(stack/local.sh env)
echo "stack: RCA_BUS__BOOTSTRAP_SERVERS=${RCA_BUS__BOOTSTRAP_SERVERS:-} RCA_STORE__POSTGRES_DSN=${RCA_STORE__POSTGRES_DSN:-}"
