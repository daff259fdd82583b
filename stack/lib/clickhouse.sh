# shellcheck shell=bash
# ClickHouse telemetry for stack/local.sh (docs/clickhouse.md).
#
# No ClickHouse server can be installed on this machine (Debian's clickhouse-server is
# from 2018), and chDB, the in-process ClickHouse engine from PyPI, locks its data
# directory to ONE process. So:
#
#   clickhouse_env         the multi-process stack (`rca serve --role api` + `rca worker ...`):
#                          telemetry in ClickHouse only when a server is given with
#                          RCA_CLICKHOUSE_URL (http[s]://user:password@host:8123), else it
#                          stays in PostgreSQL (the processes could not share a chDB directory)
#   clickhouse_env_single  ONE process (`rca serve`, every stage in it): PostgreSQL state and
#                          ClickHouse telemetry in chDB under RCA_CHDB_PATH
#                          (<repo>/.cache/stack/chdb)

_CH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_ch_path() { echo "${RCA_CHDB_PATH:-$(cd "$_CH_LIB_DIR/../.." && pwd)/.cache/stack/chdb}"; }

clickhouse_env() {
  if [ -n "${RCA_CLICKHOUSE_URL:-}" ]; then
    echo "RCA_STORE__TELEMETRY_BACKEND=clickhouse"
    echo "RCA_STORE__CLICKHOUSE_URL=$RCA_CLICKHOUSE_URL"
  else
    echo "RCA_STORE__TELEMETRY_BACKEND=postgres"
  fi
}

clickhouse_env_single() {
  echo "RCA_STORE__TELEMETRY_BACKEND=clickhouse"
  echo "RCA_STORE__CLICKHOUSE_PATH=$(_ch_path)"
}
