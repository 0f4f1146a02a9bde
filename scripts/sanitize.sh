#!/usr/bin/env bash
# Sanitizer runs of the test suite (see docs/security.md):
#   asan:  the whole tree built with clang-14, AddressSanitizer (+ LeakSanitizer)
#          and UndefinedBehaviorSanitizer in build-asan/, and every test run by
#          ctest there. The same build holds the libFuzzer targets
#          (scripts/fuzz.sh).
#   tsan:  the runtime built with ThreadSanitizer in build-tsan/, and the
#          runtime's threading and load tests linked against it alone (their
#          models compiled by a `kiln` from another build: $KILN_CLI, else
#          build-asan/bin/kiln, else build/bin/kiln, built if missing).
#   asan-build [TARGET...]: configure and build build-asan/ only.
# Any report fails the run. Code generated into artifacts is not instrumented.
#   scripts/sanitize.sh [asan|tsan|all] [extra ctest arguments for asan...]
# Environment: KILN_JOBS; KILN_SANITIZE_EXCLUDE, a ctest -E regex of more tests
# to skip.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
shift || true
jobs=${KILN_JOBS:-$(nproc)}
export CCACHE_BASEDIR="$(pwd)"
bash scripts/install-deps.sh

# Every test runs sanitized: the Python binding test in Debian's python3 with
# the ASan runtime preloaded, and the programs the install and toolchain
# tests build against the sanitized runtime built with the sanitizers too
# (cmake/sanitizers.cmake). Left out: none by default
# (KILN_SANITIZE_EXCLUDE adds a ctest -E regex).
not_sanitizable=${KILN_SANITIZE_EXCLUDE:-}
tsan_tests=(thread_pool_test_tsan runtime_threads_test_tsan load_stress_test_tsan hostile_artifact_test_tsan)

configure() {  # DIR CMAKE-ARGS...: clang-14, as libFuzzer needs; a folder set up otherwise is redone
  local dir=$1
  shift
  if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' "$dir/CMakeCache.txt"; then
    echo "sanitize: $dir/ was configured with another compiler; configuring it afresh"
    rm -rf "$dir"
  fi
  if [ ! -f "$dir/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  fi
}

build_asan() {  # [TARGET...]
  configure build-asan -DKILN_SANITIZE=address,undefined -DKILN_FUZZ=ON
  if [ $# -gt 0 ]; then
    cmake --build build-asan -j "$jobs" --target "$@"
  else
    cmake --build build-asan -j "$jobs"
  fi
}

kiln_cli() {  # prints the path of a kiln binary to compile the TSan tests' models
  local cli
  for cli in "${KILN_CLI:-}" build-asan/bin/kiln build/bin/kiln; do
    if [ -n "$cli" ] && [ -x "$cli" ]; then realpath "$cli"; return; fi
  done
  [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$jobs" --target kiln >&2
  realpath build/bin/kiln
}

# Leaks fail the run; UB stops it with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

if [ "$mode" = asan-build ]; then
  build_asan "$@"
  exit 0
fi

if [ "$mode" = asan ] || [ "$mode" = all ]; then
  echo "sanitize: ASan+UBSan build of the test suite in build-asan/"
  build_asan
  if [ -n "$not_sanitizable" ]; then
    echo "sanitize: ctest under ASan+UBSan, leaving out (KILN_SANITIZE_EXCLUDE) $not_sanitizable"
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -E "$not_sanitizable" "$@"
  else
    echo "sanitize: ctest under ASan+UBSan, every test"
    ctest --test-dir build-asan --output-on-failure -j "$jobs" "$@"
  fi
fi

if [ "$mode" = tsan ] || [ "$mode" = all ]; then
  echo "sanitize: TSan build of the runtime and its threading tests in build-tsan/"
  configure build-tsan -DKILN_SANITIZE=thread
  cmake --build build-tsan -j "$jobs" --target "${tsan_tests[@]}"
  cli=$(kiln_cli)
  echo "sanitize: runtime tests under TSan (models compiled by $cli): ${tsan_tests[*]}"
  for t in "${tsan_tests[@]}"; do
    KILN_CLI="$cli" KILN_BUILD_DIR="$(pwd)/build-tsan" KILN_SOURCE_DIR="$(pwd)" "build-tsan/tests/$t" --gtest_brief=1
  done
fi
