# Debian's chromium for the tests that load the Streamlit pages in a real headless browser
# (tests/streamlit/test_browser.py, driven by Python playwright with executable_path).
# Sourced by .ci/run: idempotent, no exit. Skips apt when /usr/bin/chromium is there.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # another apt may hold the dpkg lock on a shared machine: wait for it
  apt-get -o DPkg::Lock::Timeout=600 update -qq \
    && apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
    || echo "apt-get install chromium failed" >&2
fi
if [ -x /usr/bin/chromium ]; then
  export RCA_CHROMIUM=/usr/bin/chromium
else
  echo "WARNING: chromium could not be installed; the browser test will fail" >&2
fi
