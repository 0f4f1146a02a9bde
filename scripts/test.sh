#!/usr/bin/env bash
# Sets up, builds and runs every test: what CI runs, through .ci/run.
#   1. the whole tree built once with AddressSanitizer, LeakSanitizer and
#      UndefinedBehaviorSanitizer (clang-14, build-asan/), and the test suite
#      run there by ctest: every test (unit tests, CLI, Python binding,
#      install, the ONNX conformance run, the codegen-vs-reference sweep);
#   2. the runtime's threading and load tests under ThreadSanitizer
#      (build-tsan/);
#   3. a short libFuzzer run of every fuzz target (built in build-asan/ too).
# That is the security step, KILN_CI_SECURITY=1, the default: what CI runs
# (a fresh clone runs it end to end in about 19 minutes on 2 cores;
# docs/security.md, "What CI runs"). With KILN_CI_SECURITY=0 the script
# builds the plain optimized tree instead (build/, as scripts/build.sh builds
# it) and runs the whole suite there, no
# sanitizer or fuzz step: the quicker check while developing.
# Extra arguments go to ctest.
# Environment: KILN_JOBS; KILN_CI_SECURITY (1, the default, or 0);
# KILN_CI_FUZZ_SECONDS (default 15 per target); KILN_CI_FUZZ_TARGETS, a
# space-separated subset of the fuzz targets; KILN_SANITIZE_EXCLUDE, a ctest
# -E regex of tests to leave out of step 1 (default: none).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${KILN_JOBS:-$(nproc)}

phase() {  # NAME COMMAND...: runs it and says how long it took, in wall and CPU seconds
  echo "test: == $1"
  shift
  local TIMEFORMAT="test: == done in %0R s (CPU: %0U s user + %0S s sys)"
  time "$@"
}

case "${KILN_CI_SECURITY:-1}" in
  0)
    phase "plain build (build/)" bash scripts/build.sh
    phase "the whole test suite" ctest --test-dir build --output-on-failure -j "$jobs" "$@"
    exit 0
    ;;
  1) ;;
  *) echo "test: KILN_CI_SECURITY='$KILN_CI_SECURITY': expected 1 (sanitizers and fuzzers, the default) or 0 (the plain build)" >&2
     exit 2 ;;
esac

phase "ASan+UBSan build, and the test suite under ASan+LeakSanitizer+UBSan" bash scripts/sanitize.sh asan "$@"
phase "TSan over the runtime's threading and load tests" bash scripts/sanitize.sh tsan
# shellcheck disable=SC2086 # KILN_CI_FUZZ_TARGETS: a space-separated subset (default: all)
phase "libFuzzer, ${KILN_CI_FUZZ_SECONDS:-15} s per target" bash scripts/fuzz.sh "${KILN_CI_FUZZ_SECONDS:-15}" ${KILN_CI_FUZZ_TARGETS:-}
