#!/usr/bin/env bash
# Packs the kiln CLI, kiln-conformance, cuda_runtime_test, the CPU
# microkernel tests that need a CPU this machine may lack
# (int8_contraction_test, bf16_contraction_test: AMX) and libkiln_rt with the shared
# libraries they need (all but the C library and NVRTC, which the GPU
# machine's CUDA toolkit provides) into one compressed file, so that a GPU
# machine without LLVM, protobuf or ONNX installed can compile and run models,
# plus ONNX backend node cases (libonnx-testdata):
#   bench/gpu/bundle.sh BUILD_DIR OUT.tar.xz [--node-cases all|test|none]
# all (the default): every node case, for `device.sh ... conformance`;
# test: only those cuda_runtime_test runs (`device.sh ... test`, bench,
# profile); none: no test data (bench and profile only).
# The bundle must fit what a device run may carry (64 MiB): past that this
# fails, naming the size, instead of leaving a bundle that cannot travel.
# On the GPU machine: bench/gpu/device.sh unpacks it (see bench/gpu/README.md).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bench/gpu/bundle.sh BUILD_DIR OUT.tar.xz [--node-cases all|test|none]" >&2
  exit 2
fi
build=$1
out=$2
shift 2
cases=all
while [ $# -gt 0 ]; do
  case $1 in
    --node-cases) cases=${2:-}; shift 2 ;;
    *) echo "bundle.sh: unknown option '$1' (--node-cases all|test|none)" >&2; exit 2 ;;
  esac
done
case $cases in all | test | none) ;; *) echo "bundle.sh: --node-cases takes all, test or none, not '$cases'" >&2; exit 2 ;; esac
limit=$((64 * 1024 * 1024))
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for b in bin/kiln bin/kiln-conformance tests/cuda_runtime_test tests/int8_contraction_test tests/bf16_contraction_test; do
  [ -x "$build/$b" ] || { echo "bundle.sh: $build/$b is missing; build kiln kiln-conformance cuda_runtime_test int8_contraction_test bf16_contraction_test first" >&2; exit 1; }
  strip -o "$stage/bin/$(basename "$b")" "$build/$b"
done
cp -L "$build/lib/libkiln_rt.so.0" "$stage/lib/"
ln -s libkiln_rt.so.0 "$stage/lib/libkiln_rt.so"
# Every library the binaries load, except the C library's own and NVRTC.
ldd "$stage"/bin/* | awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libnvrtc[^/]*)\.so' |
  while read -r lib; do
    [ -e "$stage/lib/$(basename "$lib")" ] || strip -o "$stage/lib/$(basename "$lib")" "$lib" 2>/dev/null ||
      cp -L "$lib" "$stage/lib/"
  done
# The ONNX backend node cases, for `kiln-conformance --target cuda` (all) or
# cuda_runtime_test (the cases its source names).
node=/usr/share/libonnx-testdata/data/node
mkdir -p "$stage/data/node"
case $cases in
  all)
    cp -r "$node/." "$stage/data/node/"
    touch "$stage/data/node/.all"
    ;;
  test)
    grep -o '"test_[A-Za-z0-9_]*"' "$here/../../tests/runtime/cuda_runtime_test.cpp" | tr -d '"' | sort -u |
      while read -r name; do [ -d "$node/$name" ] && cp -r "$node/$name" "$stage/data/node/"; done
    ;;
esac
# Where the build's sources were: cuda_runtime_test reads test models there
# (KILN_SOURCE_DIR), and device.sh links the checkout it runs in to that path.
sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" >"$stage/source_dir"
mkdir -p "$(dirname "$out")"
XZ_OPT="${XZ_OPT:--T2 -6}" tar -C "$stage" -cJf "$out" bin lib data source_dir
size=$(stat -c %s "$out")
if [ "$size" -gt "$limit" ]; then
  echo "bundle.sh: $out is $((size / 1024 / 1024)) MiB, past the 64 MiB a device run carries;" \
    "try --node-cases test or a stronger XZ_OPT (e.g. XZ_OPT='-T2 -9')" >&2
  exit 1
fi
echo "$out: $(du -h "$out" | cut -f1) (node cases: $cases)"
