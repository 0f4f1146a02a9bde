#!/usr/bin/env bash
# Sets up, builds and runs every test (what CI runs, through .ci/run): the
# plain optimized tree (build/, as scripts/build.sh does) and the whole suite
# there. KILN_CI_SECURITY=1 runs the security step instead:
#   1. the whole tree built once with AddressSanitizer, LeakSanitizer and
#      UndefinedBehaviorSanitizer (clang-14, build-asan/), and the whole test
#      suite run there by ctest, the ONNX conformance run included;
#   2. the runtime's threading and load tests under ThreadSanitizer;
#   3. a short libFuzzer run of every fuzz target (built in build-asan/ too).
# docs/security.md ("What CI runs") has the measured cost of each step.
# It stays opt-in until the sanitized suite is green (docs/security.md,
# "Known open items"). Extra arguments go to ctest.
# Environment: KILN_JOBS; KILN_CI_FUZZ_SECONDS (default 15 per target);
# KILN_CI_FUZZ_TARGETS, a space-separated subset of the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${KILN_JOBS:-$(nproc)}

if [ "${KILN_CI_SECURITY:-0}" = 0 ]; then
  bash scripts/build.sh
  ctest --test-dir build --output-on-failure -j "$jobs" "$@"
  exit 0
fi

phase() {  # NAME COMMAND...: runs it and says how long it took
  local start=$SECONDS
  echo "test: == $1"
  shift
  "$@"
  echo "test: == done in $((SECONDS - start)) s"
}
phase "ASan+UBSan build, and the whole test suite under ASan+LeakSanitizer+UBSan" bash scripts/sanitize.sh asan "$@"
phase "TSan over the runtime's threading and load tests" bash scripts/sanitize.sh tsan
# shellcheck disable=SC2086 # KILN_CI_FUZZ_TARGETS: a space-separated subset (default: all)
phase "libFuzzer, ${KILN_CI_FUZZ_SECONDS:-15} s per target" bash scripts/fuzz.sh "${KILN_CI_FUZZ_SECONDS:-15}" ${KILN_CI_FUZZ_TARGETS:-}
