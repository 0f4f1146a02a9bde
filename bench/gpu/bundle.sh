#!/usr/bin/env bash
# Packs the kiln CLI, kiln-conformance, cuda_runtime_test and libkiln_rt with the shared
# libraries they need (all but the C library and NVRTC, which the GPU
# machine's CUDA toolkit provides) into one compressed file, so that a GPU
# machine without LLVM, protobuf or ONNX installed can compile and run models,
# plus the ONNX backend node cases (libonnx-testdata) for the conformance run.
#   bench/gpu/bundle.sh BUILD_DIR OUT.tar.xz
# On the GPU machine: bench/gpu/device.sh unpacks it (see bench/gpu/README.md).
set -euo pipefail
build=$1
out=$2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for b in bin/kiln bin/kiln-conformance tests/cuda_runtime_test; do strip -o "$stage/bin/$(basename "$b")" "$build/$b"; done
cp -L "$build/lib/libkiln_rt.so.0" "$stage/lib/"
ln -s libkiln_rt.so.0 "$stage/lib/libkiln_rt.so"
# Every library the binaries load, except the C library's own and NVRTC.
ldd "$stage"/bin/* | awk '/=> \//{print $3}' | sort -u |
  grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*|libnvrtc[^/]*)\.so' |
  while read -r lib; do
    [ -e "$stage/lib/$(basename "$lib")" ] || strip -o "$stage/lib/$(basename "$lib")" "$lib" 2>/dev/null ||
      cp -L "$lib" "$stage/lib/"
  done
# The ONNX backend node cases, for `kiln-conformance --target cuda` there.
mkdir -p "$stage/data"
cp -r /usr/share/libonnx-testdata/data/node "$stage/data/"
XZ_OPT="${XZ_OPT:--T2 -1}" tar -C "$stage" -cJf "$out" bin lib data
echo "$out: $(du -h "$out" | cut -f1)"
