# shellcheck shell=bash
# PostgreSQL for the store conformance suite, the two-writer test and stack mode:
# Debian's package (installed once), started on 127.0.0.1:${RCA_PG_PORT:-55432} with its
# data under .cache/stack/pg; exports the DSN the tests (and stack workers) read.
# shellcheck disable=SC1091
source stack/lib/postgres.sh
pg_install
pg_up
export "$(pg_env)"
echo "postgres: $RCA_STORE__POSTGRES_DSN"
