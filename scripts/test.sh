#!/usr/bin/env bash
# Run the whole test suite (unit, API, websocket and headless-Chromium tests).
# Extra arguments go to pytest. pytest exits 5 when it collected no test: that is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
mkdir -p artifacts
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
