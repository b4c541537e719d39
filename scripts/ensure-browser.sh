#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's Chromium (/usr/bin/chromium); Playwright never downloads one.
# Installs it with apt-get when it is missing and we may (root, or passwordless sudo); otherwise says so and
# carries on: those tests then skip, with the reason in pytest's summary.
set -uo pipefail

if [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No /usr/bin/chromium: the browser tests will be skipped (install Chromium, or set CHROMIUM_PATH)." >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "No /usr/bin/chromium: the browser tests will be skipped. Run: sudo apt-get install -y chromium" >&2
  exit 0
fi
echo "Installing Debian's chromium for the browser tests"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq chromium >/dev/null \
  || echo "Could not install chromium: the browser tests will be skipped." >&2
exit 0
