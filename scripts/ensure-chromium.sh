#!/usr/bin/env bash
# Install Debian's chromium for the browser tests when it is missing (needs root; Playwright never
# downloads a browser of its own here).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is missing: install it with 'sudo apt-get install chromium' (browser tests need it)" >&2
fi
