#!/usr/bin/env bash
# On the GPU machine, from the repository root: unpacks the bundle made by
# bench/gpu/bundle.sh, then runs what is asked:
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR test      # cuda_runtime_test
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR bench [gpu_bench.py options]
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR conformance
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR profile [profile_kiln.py options]
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR gemmrate [gemm_rate.py options]  # BERT's GEMMs vs cuBLAS
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR cputest TEST [gtest options]  # int8_contraction_test or
#                                                                          # bf16_contraction_test (AMX)
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR amxbench [amx_bench.py options]
#   bench/gpu/device.sh BUNDLE.tar.xz OUT_DIR amxgemm [amx_gemm.py options]
set -euo pipefail
bundle=$1
out=$2
what=$3
shift 3
kiln_root=/tmp/kiln-gpu
mkdir -p "$kiln_root" "$out"
# Unpacked once per bundle: a warm machine given a new bundle unpacks it afresh.
sum=$(md5sum "$bundle" | cut -d' ' -f1)
if [ "$(cat "$kiln_root/.bundle" 2>/dev/null)" != "$sum" ]; then
  rm -rf "${kiln_root:?}"/*
  tar -C "$kiln_root" -xJf "$bundle"
  echo "$sum" >"$kiln_root/.bundle"
fi
cuda_lib=$(dirname "$(find /usr/local/cuda*/ /usr/lib -name 'libnvrtc.so.13' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH="$kiln_root/lib:$cuda_lib:${LD_LIBRARY_PATH:-}"
kiln=$kiln_root/bin/kiln
case $what in
  test)
    # The test finds the ONNX test data and the sources where the build machine had them.
    mkdir -p /usr/share/libonnx-testdata /work
    [ -e /usr/share/libonnx-testdata/data ] || ln -s "$kiln_root/data" /usr/share/libonnx-testdata/data
    src=$(cat "$kiln_root/source_dir" 2>/dev/null || echo /work/main)
    mkdir -p "$(dirname "$src")"
    [ -e "$src" ] || ln -s "$PWD" "$src"
    "$kiln_root/bin/cuda_runtime_test" "$@" 2>&1 | tee "$out/cuda_runtime_test.txt"
    ;;
  bench)
    python3 bench/gpu/gpu_bench.py --kiln "$kiln" --runtime "$kiln_root/lib/libkiln_rt.so" --out "$out" "$@"
    ;;
  profile)
    python3 bench/gpu/profile_kiln.py --kiln "$kiln" --runtime "$kiln_root/lib/libkiln_rt.so" --out "$out" "$@"
    ;;
  gemmrate)
    python3 bench/gpu/gemm_rate.py --kiln "$kiln" --runtime "$kiln_root/lib/libkiln_rt.so" --out "$out" "$@"
    ;;
  cputest)
    test=$1
    shift
    case $test in int8_contraction_test | bf16_contraction_test) ;;
      *) echo "device.sh: cputest runs int8_contraction_test or bf16_contraction_test, not '$test'" >&2; exit 2 ;;
    esac
    "$kiln_root/bin/$test" "$@" 2>&1 | tee "$out/$test.txt"
    ;;
  amxbench)
    python3 bench/quant/amx_bench.py --kiln "$kiln" --out "$out" "$@"
    ;;
  amxgemm)
    python3 bench/quant/amx_gemm.py --kiln "$kiln" "$@" | tee "$out/amx_gemm.txt"
    ;;
  conformance)
    if [ ! -e "$kiln_root/data/node/.all" ]; then
      echo "device.sh: this bundle holds only some node cases; make it with bundle.sh ... --node-cases all" >&2
      exit 2
    fi
    "$kiln_root/bin/kiln-conformance" --target cuda --root "$kiln_root/data/node" \
      --expected tests/conformance/expected_pass.txt "$@" | tee "$out/conformance.txt"
    ;;
  *)
    echo "device.sh: unknown step '$what' (test, bench, profile, gemmrate, conformance, cputest, amxbench, amxgemm)" >&2
    exit 2
    ;;
esac
