#!/usr/bin/env bash
# Installs the Debian packages UNetTrainer builds against, only those missing (idempotent), and
# iproute2 (`ip`), which the two-host test harness Launch/multihost/run.sh needs.
# Runs `apt-get update` once, and only when something is missing. Needs root or sudo for that.
set -euo pipefail

packages=(libopenmpi-dev openmpi-bin libopenblas-dev libtiff-dev libhdf5-dev libpng-dev pkg-config iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "install-deps: swift is not on PATH; install a Swift 6 toolchain (swift.org) and retry" >&2
    exit 1
fi
