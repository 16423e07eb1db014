#!/usr/bin/env bash
# Installs the Debian packages PALS builds and tests with, only those that are missing.
set -euo pipefail
packages=(g++ cmake ninja-build make pkg-config python3 python3-pytest
          nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libspdlog-dev libfmt-dev
          libtomlplusplus-dev libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev
          chromium prometheus
          etcd-server etcd-client  # the cluster budget's store (docs/cluster.md): e2e.cluster
          openssl                  # certificates of e2e.etcd_tls
          clang libclang-rt-dev  # clang + compiler-rt (libFuzzer, ASan, UBSan): make fuzz
          clang-format           # make format-check (clang-format 14 on bookworm)
          clang-tidy)            # make tidy (clang-tidy 14, run-clang-tidy)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# Node.js runs the test of the official `openai` npm client against `pals sim-serve`; a machine
# may already have it from another source (NodeSource), so only a missing `node` adds Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install_deps: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The npm client the OpenAI-compatibility test uses, at the version pinned in
# tests/openai/package-lock.json (the only download; the test is skipped if it is absent).
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/openai/package-lock.json" ] && [ ! -d "$root/tests/openai/node_modules/openai" ]; then
    echo "install_deps: npm ci in tests/openai"
    (cd "$root/tests/openai" && npm ci --no-audit --no-fund --loglevel=error) ||
        echo "install_deps: warning: npm ci failed; the openai client test will be skipped"
fi
