#!/usr/bin/env bash
# The CUDA target through the CLI, with no GPU needed: compile for cuda,
# `kiln inspect` names target and arch, option errors are one line, and
# running without a GPU is refused cleanly (skipped, with the reason, where
# a GPU is present).
#   cuda_inspect_test.sh KILN_BINARY TINY_CNN_ONNX NODE_CASES_DIR
set -uo pipefail
kiln=$1
tiny=$2
data=$3
# shellcheck source=../tools/lib.sh
source "$(dirname "$0")/../tools/lib.sh"

# expect NAME WANT_RC WANT_REGEX(stdout+stderr) -- command...
expect() {
  local name=$1 want_rc=$2 want=$3
  shift 4
  "$@" >"$work/out" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want_rc" ]; then fail "$name: exit $rc, expected $want_rc" "$work/out"; return; fi
  if [ -n "$want" ] && ! grep -qE -- "$want" "$work/out"; then fail "$name: output does not match /$want/" "$work/out"; return; fi
  pass "$name"
}

expect "compile tiny_cnn for cuda" 0 "" -- "$kiln" compile "$tiny" --target cuda -o "$work/tiny.so" -q
expect "inspect says cuda sm_90" 0 "^  target +cuda sm_90$" -- "$kiln" inspect "$work/tiny.so"
expect "inspect --json has the arch" 0 '"cuda_arch": "sm_90"' -- "$kiln" inspect --json "$work/tiny.so"
for case in test_relu test_conv_with_strides_padding test_softmax_axis_1 test_gather_0; do
  expect "compile $case for cuda" 0 "" -- "$kiln" compile "$data/$case/model.onnx" --target cuda -o "$work/$case.so" -q
  expect "inspect $case" 0 "^  target +cuda sm_90$" -- "$kiln" inspect "$work/$case.so"
done
expect "--cuda-arch sm_80" 0 "" -- "$kiln" compile "$tiny" --target cuda --cuda-arch sm_80 -o "$work/sm80.so" -q
expect "inspect says cuda sm_80" 0 "^  target +cuda sm_80$" -- "$kiln" inspect "$work/sm80.so"
expect "--cuda-arch needs --target cuda" 2 "^kiln: error: .*--cuda-arch sm_80 needs --target cuda" -- \
  "$kiln" compile "$tiny" --cuda-arch sm_80 -o "$work/x.so"
expect "--cuda-precision fp16" 0 "" -- "$kiln" compile "$tiny" --target cuda --cuda-precision fp16 -o "$work/fp16.so" -q
expect "inspect records the precision" 0 "cuda_precision=fp16" -- "$kiln" inspect "$work/fp16.so"
expect "--cuda-precision needs --target cuda" 2 "^kiln: error: .*--cuda-precision tf32 needs --target cuda" -- \
  "$kiln" compile "$tiny" --cuda-precision tf32 -o "$work/x.so"
expect "an unknown precision is refused" 2 "fp8" -- "$kiln" compile "$tiny" --target cuda --cuda-precision fp8 -o "$work/x.so"
expect "a bad arch is one line" 2 "^kiln: error: .*'sm90' is not a GPU architecture" -- \
  "$kiln" compile "$tiny" --target cuda --cuda-arch sm90 -o "$work/x.so"
expect "an unknown target is refused" 2 "" -- "$kiln" compile "$tiny" --target tpu -o "$work/x.so"
expect "--emit llvm writes CUDA C" 0 "" -- "$kiln" compile "$tiny" --target cuda --emit llvm -o "$work/tiny.cu" -q
check "the CUDA C has kernels" grep -q '__global__' "$work/tiny.cu"

# Running: refused cleanly without a GPU.
"$kiln" run "$work/tiny.so" --input "$(dirname "$tiny")/input.npy" >"$work/out" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "SKIP run without a GPU: this machine ran the CUDA artifact (it has a GPU)"
elif [ "$rc" -eq 3 ] && grep -qE "^kiln: error: .*runs on an NVIDIA GPU \(sm_90\), but" "$work/out" &&
     [ "$(wc -l <"$work/out")" -eq 1 ]; then
  pass "run without a GPU is one clear line: $(cat "$work/out")"
else
  fail "run without a GPU: exit $rc" "$work/out"
fi

finish cuda_inspect_test
