#!/usr/bin/env bash
# Installs the Debian packages PALS builds and tests with, only those that are missing.
set -euo pipefail
packages=(g++ cmake ninja-build make pkg-config python3 python3-pytest
          nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libspdlog-dev libfmt-dev
          libtomlplusplus-dev libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev
          chromium prometheus)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
