#!/usr/bin/env bash
# Makes sure the system packages the build needs are installed, with apt-get when we may (root, or
# passwordless sudo); otherwise says what to run.
#   ensure-system-deps.sh            the MySQL/MariaDB client headers mysqlclient compiles against, and
#                                    gettext's msgfmt for the translations (manage.py compilemessages): required
#   ensure-system-deps.sh --browser  Debian's Chromium (/usr/bin/chromium) for the browser tests (tests/browser;
#                                    Playwright never downloads one): optional, they skip and say why without it
set -uo pipefail

browser=false
[ "${1:-}" = "--browser" ] && browser=true

packages=()
if $browser; then
  if [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ]; then
    exit 0
  fi
  packages+=(chromium)
  what="No /usr/bin/chromium: the browser tests will be skipped (install Chromium, or set CHROMIUM_PATH)."
else
  if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then
    packages+=(default-libmysqlclient-dev pkg-config build-essential)
  fi
  if ! command -v msgfmt >/dev/null 2>&1; then
    packages+=(gettext)
  fi
  [ ${#packages[@]} -eq 0 ] && exit 0
  what="Missing: ${packages[*]} (the MySQL/MariaDB client headers and pkg-config for mysqlclient, gettext for msgfmt)."
fi

# What to do when they cannot be installed: the browser's absence is not an error, the others' is.
give_up() {
  echo "$what $1" >&2
  $browser && exit 0
  exit 1
}

command -v apt-get >/dev/null 2>&1 || give_up "Install them with your package manager."
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  give_up "Run: sudo apt-get install -y ${packages[*]}"
fi
echo "Installing system packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null \
  || give_up "apt-get could not install them."
exit 0
