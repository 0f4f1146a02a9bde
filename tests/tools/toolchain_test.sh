#!/usr/bin/env bash
# The CLI's user-facing extras: `inspect` tables and --json, `compile
# --emit-header` (compiled into C and C++ programs with static asserts taken
# from the ONNX model itself), progress and --quiet/--verbose, `kiln ops`.
#   toolchain_test.sh KILN_BINARY SOURCE_DIR BUILD_DIR
set -uo pipefail
kiln=$1
src=$2
build=$3
py=/usr/bin/python3
model=$src/examples/tiny_cnn/tiny_cnn.onnx
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# ---- inspect: table and JSON, checked against the ONNX model read by the onnx package.
check "inspect model" "$kiln" inspect "$model"
"$kiln" inspect "$model" >"$work/table.txt"
for heading in inputs outputs ops; do
  grep -q "^$heading\$" "$work/table.txt" && pass "inspect table has '$heading'" || fail "inspect table has '$heading'"
done
grep -qE "^  image +float32 +1x3x32x32$" "$work/table.txt" && pass "inspect table row for input 'image'" ||
  { fail "inspect table row for input 'image'"; cat "$work/table.txt"; }
grep -qE "^  parameters  [0-9]+" "$work/table.txt" && grep -qE "^  flops       [0-9]+" "$work/table.txt" &&
  pass "inspect table has parameters and FLOPs" || fail "inspect table has parameters and FLOPs"
"$kiln" inspect --json "$model" >"$work/model.json"
check "inspect --json agrees with the ONNX model" "$py" - "$model" "$work/model.json" <<'PY'
import collections, json, sys
import onnx
from onnx import numpy_helper
model = onnx.load(sys.argv[1])
got = json.load(open(sys.argv[2]))
assert got["kind"] == "model", got
def np_name(code):
    if hasattr(onnx.helper, "tensor_dtype_to_np_dtype"):
        return onnx.helper.tensor_dtype_to_np_dtype(code).name
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[code].name
def io(values):
    return [{"name": v.name, "dtype": np_name(v.type.tensor_type.elem_type),
             "shape": [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]}
            for v in values]
assert got["inputs"] == io(model.graph.input), (got["inputs"], io(model.graph.input))
assert got["outputs"] == io(model.graph.output), got["outputs"]
assert got["ops"] == dict(collections.Counter(n.op_type for n in model.graph.node)), got["ops"]
assert got["nodes"] == len(model.graph.node)
params = sum(numpy_helper.to_array(t).size for t in model.graph.initializer)
assert got["parameters"] == params, (got["parameters"], params)
assert isinstance(got["flops"], int) and got["flops"] > 0, got["flops"]
PY

check "compile tiny_cnn" "$kiln" compile -q "$model" -o "$work/tiny.so" --emit-header "$work/tiny_cnn.h"
"$kiln" inspect --json "$work/tiny.so" >"$work/artifact.json"
check "inspect --json on an artifact" "$py" - "$work/artifact.json" "$work/model.json" <<'PY'
import json, sys
a, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["kind"] == "artifact" and a["target"] == "cpu" and a["checksum_ok"] is True, a
assert a["inputs"] == m["inputs"] and a["outputs"] == m["outputs"], (a["inputs"], m["inputs"])
assert a["kernel_count"] == len(a["kernels"]) > 0, a
assert a["flops"] == sum(k["flops"] for k in a["kernels"]) == m["flops"], (a["flops"], m["flops"])
PY
"$kiln" inspect "$work/tiny.so" >"$work/artifact.txt"
grep -q "^  checksum        ok" "$work/artifact.txt" && grep -qE "^  probabilities +float32 +1x10$" "$work/artifact.txt" &&
  pass "inspect artifact table" || { fail "inspect artifact table"; cat "$work/artifact.txt"; }
cp "$work/tiny.so" "$work/damaged.so"
# One byte of the weights changed: the file still parses, its checksum does not match.
"$py" -c "
import struct, sys
d = open(sys.argv[1], 'rb').read()  # flips a byte in the middle of .rodata
shoff, = struct.unpack_from('<Q', d, 0x28); shentsize, shnum, shstrndx = struct.unpack_from('<HHH', d, 0x3a)
sh = lambda i: struct.unpack_from('<IIQQQQ', d, shoff + i * shentsize)
names = sh(shstrndx)[4]
for i in range(shnum):
    name, _, _, _, off, size = sh(i)
    if d[names + name:d.index(b'\\0', names + name)] == b'.rodata':
        d = bytearray(d); d[off + size // 2] ^= 0xff; open(sys.argv[1], 'wb').write(d); break
" "$work/damaged.so"
"$kiln" inspect "$work/damaged.so" >/dev/null 2>"$work/err"
rc=$?
[ $rc -eq 2 ] && grep -q "checksum mismatch" "$work/err" && pass "inspect reports a damaged artifact" ||
  { fail "inspect reports a damaged artifact (exit $rc)"; cat "$work/err"; }

# ---- --emit-header: constants checked against the ONNX model, in C and C++.
"$py" - "$model" >"$work/asserts.h" <<'PY'
import sys
import onnx
model = onnx.load(sys.argv[1])
print("/* static asserts derived from the ONNX model */")
for role, values in (("INPUT", model.graph.input), ("OUTPUT", model.graph.output)):
    print(f"KILN_TEST_ASSERT(TINY_CNN_NUM_{role}S == {len(values)});")
    for i, v in enumerate(values):
        t = v.type.tensor_type
        p = f"TINY_CNN_{role}_{i}"
        print(f"KILN_TEST_ASSERT({p}_DTYPE == {t.elem_type});")
        print(f"KILN_TEST_ASSERT({p}_RANK == {len(t.shape.dim)});")
        elems = 1
        for j, d in enumerate(t.shape.dim):
            print(f"KILN_TEST_ASSERT({p}_DIM_{j} == {d.dim_value});")
            elems *= d.dim_value
        print(f"KILN_TEST_ASSERT({p}_ELEMS == {elems});")
        print(f"KILN_TEST_ASSERT({p}_BYTES == {elems} * sizeof({p}_CTYPE));")
        print(f"KILN_TEST_ASSERT(TINY_CNN_{role}_{v.name.upper()}_INDEX == {i});")
PY
cat >"$work/use_header.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "tiny_cnn.h"
#include "kiln_runtime.h"
#ifdef __cplusplus
#define KILN_TEST_ASSERT(x) static_assert(x, #x)
#else
#define KILN_TEST_ASSERT(x) _Static_assert(x, #x)
#endif
#include "asserts.h"
KILN_TEST_ASSERT(TINY_CNN_INPUT_0_DTYPE == KILN_FLOAT32);
/* The header agrees with the artifact's own description at run time. */
int main(int argc, char** argv) {
  static TINY_CNN_INPUT_0_CTYPE input[TINY_CNN_INPUT_0_ELEMS];
  const int64_t dims[] = TINY_CNN_INPUT_0_DIMS;
  kiln_model* model;
  kiln_tensor_info info;
  if (kiln_model_load(argv[1], &model, NULL) != KILN_OK) return 1;
  if (kiln_model_input(model, 0, &info, NULL) != KILN_OK) return 1;
  int ok = strcmp(info.name, TINY_CNN_INPUT_0_NAME) == 0 && info.dtype == TINY_CNN_INPUT_0_DTYPE &&
           info.rank == TINY_CNN_INPUT_0_RANK && memcmp(info.dims, dims, sizeof(dims)) == 0 &&
           sizeof(input) == TINY_CNN_INPUT_0_BYTES && kiln_model_num_outputs(model) == TINY_CNN_NUM_OUTPUTS;
  kiln_model_free(model);
  (void)argc;
  printf("%s\n", ok ? "header matches" : "header differs");
  return ok ? 0 : 1;
}
C
inc=(-I"$work" -I"$src/runtime/include")
link=(-L"$build/lib" -lkiln_rt -Wl,-rpath,"$build/lib")
check "the header compiles as C11 with static asserts" cc -std=c11 -Wall -Wextra -Werror -pedantic "${inc[@]}" \
  "$work/use_header.c" -o "$work/use_header_c" "${link[@]}"
check "the header compiles as C++17 with static asserts" c++ -std=c++17 -Wall -Wextra -Werror -x c++ "${inc[@]}" \
  "$work/use_header.c" -o "$work/use_header_cpp" "${link[@]}"
check "the header matches the artifact (C)" "$work/use_header_c" "$work/tiny.so"
check "the header matches the artifact (C++)" "$work/use_header_cpp" "$work/tiny.so"
sed 's/TINY_CNN_INPUT_0_DIM_2 == 32/TINY_CNN_INPUT_0_DIM_2 == 31/' "$work/asserts.h" >"$work/bad_asserts.h"
grep -q "DIM_2 == 31" "$work/bad_asserts.h" && sed -i 's/"asserts.h"/"bad_asserts.h"/' "$work/use_header.c" &&
  ! cc -std=c11 "${inc[@]}" -c "$work/use_header.c" -o "$work/x.o" 2>/dev/null &&
  pass "a wrong static assert fails to compile" || fail "a wrong static assert fails to compile"
"$kiln" compile -q "$model" -o "$work/g.txt" --emit graph --emit-header "$work/g.h" 2>"$work/err"
[ $? -eq 2 ] && grep -q "emit-header needs" "$work/err" && pass "--emit-header with --emit graph is refused" ||
  fail "--emit-header with --emit graph is refused"
check "--header-prefix" "$kiln" compile -q "$model" -o "$work/p.so" --emit-header "$work/p.h" --header-prefix my-net
grep -q "#define MY_NET_INPUT_0_NAME \"image\"" "$work/p.h" && pass "--header-prefix names the macros" ||
  fail "--header-prefix names the macros"

# ---- progress: quiet in pipes, --verbose stage lines, a live line on a terminal.
"$kiln" compile "$model" -o "$work/a.so" 2>"$work/err"
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "^kiln: compiled" "$work/err" && pass "no progress when stderr is a pipe" ||
  { fail "no progress when stderr is a pipe"; cat -A "$work/err"; }
"$kiln" compile -q "$model" -o "$work/a.so" 2>"$work/err"
[ ! -s "$work/err" ] && pass "--quiet prints nothing" || fail "--quiet prints nothing"
"$kiln" compile -v "$model" -o "$work/a.so" 2>"$work/err"
for stage in "importing the model" "optimizing the graph" "lowering to kernels" "generating and linking"; do
  grep -qE "^kiln compile: $stage.* ms$" "$work/err" && pass "--verbose reports '$stage'" ||
    { fail "--verbose reports '$stage'"; cat "$work/err"; }
done
if command -v script >/dev/null; then
  # A terminal: a slow stage (LLVM code generation at -O3 here) draws the status line, then clears it.
  script -qec "'$kiln' compile -O3 '$model' -o '$work/t.so'" /dev/null >"$work/tty.txt" 2>&1
  if grep -q $'\r\e\[K' "$work/tty.txt" && grep -q "kiln: compiled" "$work/tty.txt"; then
    pass "a terminal shows and clears the status line"
  elif ! grep -q "kiln compile: " "$work/tty.txt"; then
    echo "NOTE: compiling took under the status line's delay; the terminal line was not exercised"
  else
    fail "a terminal shows and clears the status line"; cat -A "$work/tty.txt"
  fi
else
  echo "NOTE: 'script' is not installed; the terminal status line is not exercised"
fi
"$kiln" compile -q -v "$model" -o "$work/a.so" 2>"$work/err"
[ $? -eq 2 ] && pass "--quiet with --verbose is a usage error" || fail "--quiet with --verbose is a usage error"

# ---- kiln ops (hidden): the registry as a Markdown table.
"$kiln" ops >"$work/ops.md"
for op in Conv Gemm Relu Softmax; do
  grep -qE "^\| $op \| [0-9]" "$work/ops.md" && pass "kiln ops lists $op" || fail "kiln ops lists $op"
done
help=$("$kiln" --help)
grep -q "^ *ops" <<<"$help" && fail "kiln ops stays out of --help" || pass "kiln ops stays out of --help"
grep -q "Exit codes:" <<<"$help" && pass "--help documents exit codes" || fail "--help documents exit codes"

finish toolchain_test
