#!/usr/bin/env bash
# Makes sure the MySQL/MariaDB client headers that mysqlclient compiles against are installed.
# Installs them with apt-get when missing and we may (root, or passwordless sudo); otherwise says what to run.
set -euo pipefail

if pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null; then
  exit 0
fi
packages=(default-libmysqlclient-dev pkg-config build-essential)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mysqlclient needs the MySQL/MariaDB client headers and pkg-config; install them with your package manager." >&2
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
