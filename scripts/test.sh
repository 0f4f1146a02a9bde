#!/usr/bin/env bash
# Sets up, builds and runs every test: unit tests and the ONNX conformance run,
# then the sanitizer and fuzzing runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "${KILN_JOBS:-$(nproc)}" "$@"

# Reliability checks (docs/security.md). KILN_CI_SECURITY=0 skips them. CI
# runs a subset of scripts/sanitize.sh: the conformance run and the
# codegen-vs-reference sweep (already run above, and many minutes under ASan)
# are left out.
# Off by default until the three extra builds fit the CI time budget
# (docs/security.md, "Known open items"); KILN_CI_SECURITY=1 turns them on.
if [ "${KILN_CI_SECURITY:-0}" != 0 ]; then
  phase() {  # NAME COMMAND...: runs it and says how long it took
    local start=$SECONDS
    echo "test: == $1"
    shift
    "$@"
    echo "test: == done in $((SECONDS - start)) s"
  }
  phase "ASan+UBSan (LeakSanitizer on) over the test suite, without conformance and codegen-vs-reference" \
    env KILN_SANITIZE_EXCLUDE='CodegenVsReference' bash scripts/sanitize.sh asan -LE conformance
  phase "TSan over the runtime tests" bash scripts/sanitize.sh tsan
  # shellcheck disable=SC2086 # KILN_CI_FUZZ_TARGETS: a space-separated subset (default: all)
  phase "libFuzzer, ${KILN_CI_FUZZ_SECONDS:-20} s per target" bash scripts/fuzz.sh "${KILN_CI_FUZZ_SECONDS:-20}" ${KILN_CI_FUZZ_TARGETS:-}
fi
