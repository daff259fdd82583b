# Web app (frontend/, issue 13): Debian's Chromium for the end-to-end tests in tests/web,
# the pinned npm dependencies (npm ci, cached under .cache/npm), then types, lint and the
# production build that the tests serve. Sourced by .ci/run; idempotent.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
export npm_config_cache="$PWD/.cache/npm" NEXT_TELEMETRY_DISABLED=1
(
  set -euo pipefail
  cd frontend
  t0=$SECONDS
  npm ci --no-audit --no-fund --prefer-offline
  echo "npm ci: $((SECONDS - t0)) s"
  ./node_modules/.bin/tsc --noEmit
  echo "tsc --strict --noEmit: clean"
  ./node_modules/.bin/next lint --max-warnings 0
  ./node_modules/.bin/next build
  echo "web step: $((SECONDS - t0)) s"
)
