#!/usr/bin/env bash
# Single-GEMM micro benchmark: one ONNX MatMul (activation [M,K] x constant
# weight [K,N]) per shape, compiled by Kiln at -O2 and timed with
# `kiln bench`; prints GFLOP/s (2*M*N*K per run) and the fraction of the fp32
# peak that `kiln bench` estimates (see bench/README.md).
#
#   bench/gemm.sh [--threads N] [--iters N] [--max-time S] [--shapes MxKxN,...] [--out DIR]
set -uo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench")
kiln=${KILN:-$root/build/bin/kiln}
threads=$(nproc)
iters=50
max_time=10
shapes=1024x1024x1024,128x768x768,128x768x3072,128x3072x768
out=$bench/out/gemm
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "usage: bench/gemm.sh [--threads N] [--iters N] [--max-time S] [--shapes MxKxN,...] [--out DIR]" >&2; exit 2; }
  case $1 in
    --threads) threads=$2 ;;
    --iters) iters=$2 ;;
    --max-time) max_time=$2 ;;
    --shapes) shapes=$2 ;;
    --out) out=$2 ;;
    *) echo "bench/gemm.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$kiln" ] || { echo "bench/gemm.sh: no kiln CLI at $kiln (build it, or set KILN=path)" >&2; exit 4; }
mkdir -p "$out"

printf '%-18s %10s %10s %9s\n' "M x K x N" "median ms" "GFLOP/s" "% peak"
IFS=, read -r -a list <<<"$shapes"
for shape in "${list[@]}"; do
  [[ $shape =~ ^([0-9]+)x([0-9]+)x([0-9]+)$ ]] || { echo "bench/gemm.sh: '$shape' is not MxKxN" >&2; exit 2; }
  m=${BASH_REMATCH[1]} k=${BASH_REMATCH[2]} n=${BASH_REMATCH[3]}
  model=$out/matmul_$shape.onnx
  /usr/bin/python3 "$bench/matmul_model.py" "$model" "$m" "$k" "$n" || exit 1
  if ! "$kiln" compile -O2 "$model" -o "$out/matmul_$shape.so" 2>"$out/compile.err"; then
    printf '%-18s compile failed: %s\n' "$shape" "$(tail -n 1 "$out/compile.err")"
    continue
  fi
  json=$("$kiln" bench "$out/matmul_$shape.so" --threads "$threads" --iters "$iters" --warmup 3 --max-time "$max_time" --json) ||
    { printf '%-18s bench failed\n' "$shape"; continue; }
  /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
m, k, n = map(int, sys.argv[2:5])
ms, peak = r["median_ms"], r["peak_gflops"]
gflops = 2 * m * k * n / (ms * 1e6)
print("%-18s %10.3f %10.1f %8.1f%%" % (sys.argv[5], ms, gflops, 100 * gflops / peak))
' "$json" "$m" "$k" "$n" "$shape"
  last=$json
done
[ -n "${last:-}" ] && /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print("peak %.0f GFLOP/s = %s; %d threads" % (r["peak_gflops"], r["peak_derivation"], r["threads"]))
' "$last"
exit 0
