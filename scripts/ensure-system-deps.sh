#!/usr/bin/env bash
# Makes sure the system packages the build needs are installed: the MySQL/MariaDB client headers that
# mysqlclient compiles against, and gettext's msgfmt, which compiles the translations (manage.py compilemessages).
# Installs what is missing with apt-get when we may (root, or passwordless sudo); otherwise says what to run.
set -euo pipefail

packages=()
if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then
  packages+=(default-libmysqlclient-dev pkg-config build-essential)
fi
if ! command -v msgfmt >/dev/null 2>&1; then
  packages+=(gettext)
fi
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing: ${packages[*]} (the MySQL/MariaDB client headers and pkg-config for mysqlclient, gettext for msgfmt); install them with your package manager." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "Missing system packages: ${packages[*]}. Run: sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
