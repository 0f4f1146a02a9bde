#!/usr/bin/env bash
# Measures this CPU's per-core peak of int8 dot products, float32 FMA and
# bf16 dot products (bench/peak.cpp), single-threaded. Needs g++ and a CPU
# with AVX512-VNNI and AVX512-BF16.
#   bench/peak.sh
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
out=$bench/out/peak
mkdir -p "$out"
g++ -O2 -march=native -o "$out/peak" "$bench/peak.cpp"
"$out/peak"
