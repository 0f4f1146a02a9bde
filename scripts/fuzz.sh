#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for SECONDS (default 60) on seed
# corpora generated from the ONNX test data and freshly compiled artifacts.
# The targets live in the ASan+UBSan tree of scripts/sanitize.sh (build-asan/,
# clang-14, every library compiled with libFuzzer's coverage), so one build
# serves the sanitized test suite and the fuzzers. Exits non-zero when any
# target crashed, leaked, hung or blew its memory limit; the input that did it
# is left in build-asan/fuzz-crashes/. See docs/security.md.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Environment: KILN_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all_targets=(fuzz_onnx_import fuzz_onnx_infer fuzz_npy fuzz_tensor_proto fuzz_artifact)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
build="build-asan"

echo "fuzz: building ${targets[*]} in $build/"
# The artifact seeds are compiled by the same tree's kiln.
bash scripts/sanitize.sh asan-build "${targets[@]}" kiln

echo "fuzz: generating seed corpora"
/usr/bin/python3 tests/fuzz/make_corpus.py "$build/fuzz-seeds" "$build/bin/kiln"

# Any sanitizer report is fatal; leaks are reported per input by libFuzzer.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/fuzz-crashes"
failed=()
for target in "${targets[@]}"; do
  work="$build/fuzz-corpus/$target"  # grows across runs; the seeds are regenerated
  mkdir -p "$work"
  log="$build/fuzz-logs/$target.log"
  mkdir -p "$(dirname "$log")"
  echo "fuzz: $target for ${seconds}s (log: $log)"
  # -timeout: one input taking longer is a hang. -rss_limit_mb: a model that
  # makes the compiler allocate more is a size bomb (also caps single mallocs).
  if "$build/fuzz/$target" "$work" "$build/fuzz-seeds/$target" \
      -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-crashes/$target-" >"$log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo "?")
    echo "fuzz:   ok: $runs inputs, $cov coverage points, corpus $(find "$work" -type f | wc -l) files"
  else
    echo "fuzz:   FAILED: $(grep -m1 -E 'ERROR: |SUMMARY: |runtime error' "$log" || tail -1 "$log")"
    grep -E "Test unit written to" "$log" | sed 's/^/fuzz:   /' || true
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; reproduce with $build/fuzz/TARGET CRASH_FILE"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding"
