#!/usr/bin/env bash
# Sets up, builds, compiles the example model shipped in examples/ and runs it,
# printing its output and timing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p build/demo
build/bin/kiln compile examples/tiny_cnn/tiny_cnn.onnx -o build/demo/tiny_cnn.so
build/bin/kiln inspect build/demo/tiny_cnn.so
build/bin/kiln run build/demo/tiny_cnn.so --input examples/tiny_cnn/input.npy --repeat 100 --output-dir build/demo
