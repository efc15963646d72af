#!/usr/bin/env bash
# The browser for the UI tests (tests/test_ui.py): Debian's chromium, driven by Playwright's
# Python API with executable_path=/usr/bin/chromium (never `playwright install`, which would
# download a browser build from a CDN). Installs it only when it is missing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  echo "chromium present: $(chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium is missing and installing it needs root (apt-get install -y chromium)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
chromium --version
