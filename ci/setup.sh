#!/usr/bin/env bash
# Installs what building and testing gears-rs needs, only when it is missing. Idempotent; run as root
# (or with sudo available). Nothing is fetched from anywhere but Debian's package registry.
set -euo pipefail

packages=(
  redis-server redis-tools      # the server the module loads into, and redis-cli / redis-benchmark
  libclang-dev                  # bindgen (redis-module's build script)
  python3.11-dev libpython3.11-dev  # the embedded CPython and its headers
  python3-cloudpickle           # callables that travel (registrations, cluster) are cloudpickled
  python3-venv
  python3-pip python3-setuptools python3-wheel  # pip wheel builds source-only requirements
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's redis-server package starts a service on 6379; our scripts start their own servers.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl stop redis-server || true
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (the Rust toolchain must be on the machine)" >&2; exit 1; }
