#!/usr/bin/env bash
# Sanitizer runs of the test suite (see docs/security.md):
#   asan: the whole suite built with AddressSanitizer (+ LeakSanitizer) and
#         UndefinedBehaviorSanitizer in build-asan/, run by ctest;
#   tsan: the runtime's tests built with ThreadSanitizer in build-tsan/.
# Any report fails the run. Code generated into artifacts is not instrumented.
#   scripts/sanitize.sh [asan|tsan|all] [extra ctest arguments for asan...]
# Environment: KILN_JOBS; KILN_SANITIZE_EXCLUDE, a ctest -E regex of more tests
# to skip; CC/CXX pick the compiler (default: the system's g++).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
shift || true
jobs=${KILN_JOBS:-$(nproc)}
export CCACHE_BASEDIR="$(pwd)"
bash scripts/install-deps.sh

# Tests that cannot run in a sanitized build: Debian's python3 loading an
# ASan-built module, and building programs (the embedding examples, the
# --emit-header checks) against the sanitized runtime without the sanitizer
# runtime.
not_sanitizable='^(python_binding_test|install_embed_test|toolchain_test)$'
[ -z "${KILN_SANITIZE_EXCLUDE:-}" ] || not_sanitizable="$not_sanitizable|$KILN_SANITIZE_EXCLUDE"
runtime_tests=(runtime_test hostile_artifact_test load_stress_test)

configure() {  # DIR SANITIZERS
  if [ ! -f "$1/build.ninja" ]; then
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE="$2" >/dev/null
  fi
}

# Leaks fail the run; UB stops it with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

if [ "$mode" = asan ] || [ "$mode" = all ]; then
  echo "sanitize: ASan+UBSan build of the test suite in build-asan/"
  configure build-asan address,undefined
  cmake --build build-asan -j "$jobs"
  echo "sanitize: ctest under ASan+UBSan (skipping $not_sanitizable)"
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E "$not_sanitizable" "$@"
fi

if [ "$mode" = tsan ] || [ "$mode" = all ]; then
  echo "sanitize: TSan build of the runtime tests in build-tsan/"
  configure build-tsan thread
  cmake --build build-tsan -j "$jobs" --target "${runtime_tests[@]}"
  echo "sanitize: runtime tests under TSan: ${runtime_tests[*]}"
  for t in "${runtime_tests[@]}"; do
    KILN_BUILD_DIR="$(pwd)/build-tsan" KILN_SOURCE_DIR="$(pwd)" "build-tsan/tests/$t" --gtest_brief=1
  done
fi
