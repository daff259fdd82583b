# shellcheck shell=bash
# Prometheus and Alertmanager for stack mode on this machine: Debian's packages, our own
# ports and data dirs, the rules of stack/prometheus/rules, scraping the API and the stage
# workers started by hand on 127.0.0.1 (see docs/stack.md).
#
# Source this file, then call:
#   prom_install   apt-get install prometheus prometheus-alertmanager (idempotent)
#   prom_up        write the configs and start both (Prometheus on $RCA_PROMETHEUS_PORT)
#   prom_down      stop both (by their PIDs)
#
# Settings (environment): RCA_PROMETHEUS_PORT (19090), RCA_ALERTMANAGER_PORT (19095; the Kafka controller takes 19093),
# RCA_PROM_DATA (<repo>/.cache/stack/prometheus), and the scrape targets, comma-separated:
# RCA_PROM_API_TARGETS (127.0.0.1:8080), RCA_PROM_DETECTOR_TARGETS (127.0.0.1:9101,127.0.0.1:9102),
# RCA_PROM_GROUPING_TARGETS (127.0.0.1:9103), RCA_PROM_RCA_TARGETS (127.0.0.1:9104).

_PROM_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_PROM_ROOT="$(cd "$_PROM_LIB_DIR/../.." && pwd)"

_prom_port() { echo "${RCA_PROMETHEUS_PORT:-19090}"; }
_am_port() { echo "${RCA_ALERTMANAGER_PORT:-19095}"; }
_prom_data() { echo "${RCA_PROM_DATA:-$_PROM_ROOT/.cache/stack/prometheus}"; }

prom_install() {
  local missing=""
  command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
  command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
  [ -z "$missing" ] && return 0
  local sudo=""
  [ "$(id -u)" = "0" ] || sudo="sudo"
  echo "prom_install: installing Debian's$missing" >&2
  # shellcheck disable=SC2086
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
    $sudo apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    # shellcheck disable=SC2086
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >/dev/null
  fi
}

_targets_yaml() {  # "a,b" -> ["a", "b"]
  local out="" t
  IFS=',' read -ra _ts <<< "$1"
  for t in "${_ts[@]}"; do out="$out${out:+, }\"$t\""; done
  echo "[$out]"
}

_pid_of() {  # pidfile
  [ -f "$1" ] || return 1
  local pid
  pid="$(cat "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

_wait_ready() {  # url pidfile log name
  local i
  for i in $(seq 1 100); do
    if command -v curl >/dev/null 2>&1; then
      curl -fsS "$1" >/dev/null 2>&1 && return 0
    else
      python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" >/dev/null 2>&1 && return 0
    fi
    _pid_of "$2" >/dev/null || { tail -n 20 "$3" >&2; return 1; }
    sleep 0.2
  done
  echo "prom_up: $4 not ready at $1 in 20 s (see $3)" >&2
  return 1
}

prom_up() {
  local data pport aport
  data="$(_prom_data)"; pport="$(_prom_port)"; aport="$(_am_port)"
  command -v prometheus >/dev/null 2>&1 || { echo "prom_up: run prom_install first" >&2; return 1; }
  mkdir -p "$data/tsdb" "$data/alertmanager"
  cat > "$data/alertmanager.yml" < "$_PROM_ROOT/stack/prometheus/alertmanager.yml"
  cat > "$data/prometheus.yml" <<CFG
# written by stack/local.sh up (stack/lib/prometheus.sh); the compose stack's is stack/prometheus/prometheus.yml
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - $_PROM_ROOT/stack/prometheus/rules/*.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:$aport"]
scrape_configs:
  - job_name: rca-api
    static_configs:
      - targets: $(_targets_yaml "${RCA_PROM_API_TARGETS:-127.0.0.1:8080}")
  - job_name: rca-detector
    static_configs:
      - targets: $(_targets_yaml "${RCA_PROM_DETECTOR_TARGETS:-127.0.0.1:9101,127.0.0.1:9102}")
  - job_name: rca-grouping
    static_configs:
      - targets: $(_targets_yaml "${RCA_PROM_GROUPING_TARGETS:-127.0.0.1:9103}")
  - job_name: rca-rca
    static_configs:
      - targets: $(_targets_yaml "${RCA_PROM_RCA_TARGETS:-127.0.0.1:9104}")
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$pport"]
CFG
  if ! _pid_of "$data/alertmanager.pid" >/dev/null; then
    nohup prometheus-alertmanager --config.file="$data/alertmanager.yml" --storage.path="$data/alertmanager" \
      --web.listen-address="127.0.0.1:$aport" --cluster.listen-address= --log.level=warn \
      >"$data/alertmanager.log" 2>&1 &
    echo $! > "$data/alertmanager.pid"
    _wait_ready "http://127.0.0.1:$aport/-/ready" "$data/alertmanager.pid" "$data/alertmanager.log" alertmanager || return 1
  fi
  if ! _pid_of "$data/prometheus.pid" >/dev/null; then
    nohup prometheus --config.file="$data/prometheus.yml" --storage.tsdb.path="$data/tsdb" \
      --web.listen-address="127.0.0.1:$pport" --log.level=warn >"$data/prometheus.log" 2>&1 &
    echo $! > "$data/prometheus.pid"
    _wait_ready "http://127.0.0.1:$pport/-/ready" "$data/prometheus.pid" "$data/prometheus.log" prometheus || return 1
  fi
  echo "prom_up: Prometheus on 127.0.0.1:$pport, Alertmanager on 127.0.0.1:$aport (data $data)" >&2
}

_stop_pidfile() {
  local pid
  pid="$(_pid_of "$1")" || { rm -f "$1"; return 0; }
  kill "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

prom_down() {
  local data
  data="$(_prom_data)"
  _stop_pidfile "$data/prometheus.pid"
  _stop_pidfile "$data/alertmanager.pid"
}
