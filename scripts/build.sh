#!/usr/bin/env bash
# Configures and builds Kiln into build/ (CLI at build/bin/kiln, runtime at
# build/lib/libkiln_rt.so). Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=${KILN_JOBS:-$(nproc)}
# With ccache installed, builds of other clones of this repository reuse objects.
export CCACHE_BASEDIR="$(pwd)"
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=${KILN_BUILD_TYPE:-RelWithDebInfo} >/dev/null
fi
cmake --build build -j "$jobs"
