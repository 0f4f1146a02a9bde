#!/usr/bin/env bash
# Sets up, builds and runs every test: unit tests and the ONNX conformance run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${KILN_JOBS:-$(nproc)}" "$@"
