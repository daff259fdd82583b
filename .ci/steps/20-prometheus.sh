# Prometheus and Alertmanager (Debian packages) for the receiver tests in tests/e2e/:
# the tests start each on its own port and data dir and stop it by PID (apt starts nothing).
# Idempotent: installs only what is missing, runs apt-get update at most once.
_rca_prom_missing=""
command -v prometheus >/dev/null 2>&1 || _rca_prom_missing="$_rca_prom_missing prometheus"
command -v prometheus-alertmanager >/dev/null 2>&1 || _rca_prom_missing="$_rca_prom_missing prometheus-alertmanager"
if [ -n "$_rca_prom_missing" ]; then
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $_rca_prom_missing >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $_rca_prom_missing >/dev/null
  fi
fi
unset _rca_prom_missing
prometheus --version 2>&1 | head -1
prometheus-alertmanager --version 2>&1 | head -1
