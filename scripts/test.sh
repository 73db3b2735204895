#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (as root), then runs
# all of it: ruff (lint + format check), mypy on the package, pytest (every tier).
# Usage: bash scripts/test.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: real servers and tools the tests start (never mocks).
#   postgresql (PostgreSQL 15 + pgbench), prometheus (promtool + server), chromium
#   (headless browser tests), wrk (HTTP load in the app-metrics test), ripgrep (the logs
#   benchmark's anchor, also run by its smoke test), python3-venv.
APT_PACKAGES=(python3-venv postgresql prometheus chromium wrk ripgrep)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[test] installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python dependencies in a virtual environment beside the code.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[test] creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

export PATH="$PWD/.venv/bin:$PATH"
echo "[test] ruff check";   ruff check .
echo "[test] ruff format";  ruff format --check .
echo "[test] mypy";         mypy
echo "[test] pytest"
exec pytest "$@"
