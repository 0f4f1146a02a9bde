#!/usr/bin/env bash
# Installs every Debian package Kiln needs to build, test and run its examples.
# Idempotent: when everything is present it only checks and exits (well under a second).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  llvm-19-dev liblld-19-dev zlib1g-dev libzstd-dev libedit-dev libcurl4-openssl-dev libffi-dev libxml2-dev libncurses-dev
  libprotobuf-dev protobuf-compiler libonnx-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libonnx-testdata python3 python3-onnx python3-numpy
  clang libclang-rt-14-dev
  python3-dev python3-pybind11 pybind11-dev graphviz chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
