#!/usr/bin/env bash
# Create or update the virtual environment. Usage: scripts/bootstrap.sh [dev]
# "dev" adds the test tools and, for the browser tests, Debian's chromium when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
req=requirements.txt
[ "${1:-}" = "dev" ] && req=requirements-dev.txt
# Skip pip when nothing changed since the last successful install.
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$(basename "$req")
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$req"
  touch "$stamp"
fi

# Debian packages: Tesseract finds burned-in text on intake; Chromium runs the browser tests.
apt_needed=()
command -v tesseract >/dev/null 2>&1 || apt_needed+=(tesseract-ocr)
[ "${1:-}" = "dev" ] && [ ! -x /usr/bin/chromium ] && apt_needed+=(chromium)
if [ ${#apt_needed[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${apt_needed[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_needed[@]}" >/dev/null; then
    :
  elif [ "${1:-}" = "dev" ]; then
    echo "Could not install ${apt_needed[*]}: the tests need them." >&2
    exit 1
  else
    echo "Warning: could not install ${apt_needed[*]}; uploads will be flagged 'OCR unavailable' for review." >&2
  fi
fi
mkdir -p var
