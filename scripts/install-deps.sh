#!/usr/bin/env bash
# Installs every build and test dependency of headroom (Debian packages and PyPI); idempotent.
set -euo pipefail
APT_PACKAGES=(
  cmake ninja-build g++ pkg-config        # build
  nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libcpp-httplib-dev libicu-dev libboost1.81-dev   # libraries
  haproxy                                 # failover test (tests/python/failover)
  chromium chromium-driver                # the web page's browser test (tests/python/web, headless)
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and benchmarks
  clang libclang-rt-14-dev                # libFuzzer target (tests/fuzz)
  python3 python3-pip                     # python tests
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A distribution's own python3 (Debian 12 and later) refuses pip installs outside a virtual environment
# (PEP 668, "externally-managed-environment"); the tests run that python3, so the packages go into it.
# The variable is ignored by pythons that are not externally managed (pyenv, venvs) and by older pips.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q -r "$here/requirements-test.txt"
