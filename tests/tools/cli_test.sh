#!/usr/bin/env bash
# End-to-end checks of the kiln CLI as a user or CI pipeline drives it: exit
# codes and the one-line errors for bad input.
#   cli_test.sh KILN_BINARY
set -uo pipefail
kiln=$1
data=/usr/share/libonnx-testdata/data/node
examples=$(cd "$(dirname "$0")/../../examples" && pwd)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"


case_dir=$data/test_conv_with_strides_padding
expect "compile conv" 0 "" -- "$kiln" compile "$case_dir/model.onnx" -o "$work/c.so"
expect "check conv" 0 "" -- "$kiln" check "$work/c.so" --test-dir "$case_dir"
expect "check against another case's data is a mismatch" 1 "^kiln: mismatch: .*output 0 'y'" -- \
  "$kiln" check "$work/c.so" --test-dir "$data/test_conv_with_strides_no_padding"
expect "inspect artifact" 0 "" -- "$kiln" inspect "$work/c.so"
grep -q "target          cpu" "$work/out" && echo "PASS inspect names the target" && passed=$((passed + 1)) ||
  { echo "FAIL inspect names the target"; failed=$((failed + 1)); }
expect "inspect model" 0 "" -- "$kiln" inspect "$examples/tiny_cnn/tiny_cnn.onnx"
expect "inspect --ir" 0 "" -- "$kiln" inspect --ir "$examples/tiny_cnn/tiny_cnn.onnx"
grep -q "Conv 'conv1'" "$work/out" && echo "PASS IR names nodes" && passed=$((passed + 1)) ||
  { echo "FAIL IR names nodes"; failed=$((failed + 1)); }

expect "run with .pb input" 0 "" -- "$kiln" run "$work/c.so" --input "$case_dir/test_data_set_0/input_0.pb" \
  --input W="$case_dir/test_data_set_0/input_1.pb" --output-dir "$work/out_dir"
[ -f "$work/out_dir/output_0.npy" ] && echo "PASS run writes output_0.npy" && passed=$((passed + 1)) ||
  { echo "FAIL run writes output_0.npy"; failed=$((failed + 1)); }
expect "run with a missing input" 2 "no value given for input 1 'W'" -- \
  "$kiln" run "$work/c.so" --input "$case_dir/test_data_set_0/input_0.pb"
expect "run with an unknown input name" 2 "no input named 'nope'" -- \
  "$kiln" run "$work/c.so" --input nope="$case_dir/test_data_set_0/input_0.pb"
expect "run with a wrong shape" 2 "input 0 'x': shape" -- \
  "$kiln" run "$work/c.so" --input "$case_dir/test_data_set_0/input_1.pb" --input "$case_dir/test_data_set_0/input_1.pb"

strnorm=$data/test_strnormalizer_export_monday_casesensintive_upper
expect "compile a string model" 0 "" -- "$kiln" compile "$strnorm/model.onnx" -o "$work/s.so"
expect "run prints strings" 0 "" -- "$kiln" run "$work/s.so" --input "$strnorm/test_data_set_0/input_0.pb" \
  --output-dir "$work/s_out"
grep -q 'y: string\[3\] = \["TUESDAY", "WEDNESDAY", "THURSDAY"\]' "$work/out" &&
  echo "PASS run prints strings quoted" && passed=$((passed + 1)) ||
  { echo "FAIL run prints strings quoted"; sed 's/^/  | /' "$work/out"; failed=$((failed + 1)); }
[ -f "$work/s_out/output_0.npy" ] && echo "PASS run writes strings as .npy" && passed=$((passed + 1)) ||
  { echo "FAIL run writes strings as .npy"; failed=$((failed + 1)); }
same=$data/test_strnormalizer_nostopwords_nochangecase
expect "compile a string model of one shape" 0 "" -- "$kiln" compile "$same/model.onnx" -o "$work/same.so"
expect "write strings" 0 "" -- "$kiln" run "$work/same.so" --input "$same/test_data_set_0/input_0.pb" \
  --output-dir "$work/same_out"
expect "strings round-trip through .npy" 0 "" -- "$kiln" run "$work/same.so" --input "$work/same_out/output_0.npy"
grep -q 'y: string\[2\] = \["monday", "tuesday"\]' "$work/out" &&
  echo "PASS .npy strings read back" && passed=$((passed + 1)) ||
  { echo "FAIL .npy strings read back"; sed 's/^/  | /' "$work/out"; failed=$((failed + 1)); }
expect "check a string model" 0 "" -- "$kiln" check "$work/s.so" --test-dir "$strnorm"

printf 'not a model' >"$work/corrupt.onnx"
expect "corrupt ONNX file" 2 "^kiln: error: '.*corrupt.onnx' is not a valid ONNX model" -- \
  "$kiln" compile "$work/corrupt.onnx" -o "$work/x.so"
head -c 2000 "$work/c.so" >"$work/truncated.so"
expect "truncated artifact" 2 "^kiln: error: artifact '.*truncated.so': .*truncated" -- \
  "$kiln" run "$work/truncated.so" --input "$case_dir/test_data_set_0/input_0.pb"
expect "missing model file" 4 "^kiln: error: .*missing.onnx" -- "$kiln" compile "$work/missing.onnx" -o "$work/x.so"
expect "unknown --emit stage" 2 "" -- "$kiln" compile "$case_dir/model.onnx" -o "$work/x" --emit nonsense
expect "--shape with a bad spec" 2 "--shape expects NAME=DIMS" -- \
  "$kiln" compile "$case_dir/model.onnx" -o "$work/x.so" --shape 1x2
expect "--shape naming no input" 2 "--shape names input 'nope'" -- \
  "$kiln" compile "$case_dir/model.onnx" -o "$work/x.so" --shape nope=1x2
expect "--cpu unknown to LLVM" 2 "--cpu 'pentium9000'" -- \
  "$kiln" compile "$case_dir/model.onnx" -o "$work/x.so" --cpu pentium9000
expect "--features unknown to LLVM" 2 "--features: .warp-drive." -- \
  "$kiln" compile "$case_dir/model.onnx" -o "$work/x.so" --features +warp-drive
for stage in graph onnx kernels llvm obj; do
  expect "--emit $stage" 0 "" -- "$kiln" compile "$case_dir/model.onnx" -o "$work/stage.$stage" --emit $stage
done
/usr/bin/python3 -c "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]))" "$work/stage.onnx" &&
  echo "PASS --emit onnx passes the ONNX checker" && passed=$((passed + 1)) || { echo "FAIL --emit onnx checker"; failed=$((failed + 1)); }
grep -q "kiln_model_run" "$work/stage.llvm" && echo "PASS --emit llvm holds the entry point" && passed=$((passed + 1)) ||
  { echo "FAIL --emit llvm holds the entry point"; failed=$((failed + 1)); }
expect "-O0 compiles" 0 "" -- "$kiln" compile "$case_dir/model.onnx" -o "$work/o0.so" -O0
expect "-O0 checks" 0 "" -- "$kiln" check "$work/o0.so" --test-dir "$case_dir"
expect "--report" 0 "" -- "$kiln" compile "$examples/tiny_cnn/tiny_cnn.onnx" -o "$work/t.so" --report "$work/report.json"
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['kernels'] > 0 and r['weight_bytes'] > 0 and r['passes']" "$work/report.json" &&
  echo "PASS --report writes the JSON fields" && passed=$((passed + 1)) || { echo "FAIL --report JSON"; failed=$((failed + 1)); }
/usr/bin/python3 - "$work/report.json" <<'PY' && echo "PASS --report lists the program passes" && passed=$((passed + 1)) ||
import json, sys
passes = {p["name"]: p for p in json.load(open(sys.argv[1]))["passes"]}
for name in ("infer-shapes", "fold-constants", "fuse-kernels", "plan-in-place"):
    assert name in passes, (name, list(passes))
    assert all(isinstance(passes[name].get(k), (int, float)) for k in ("nodes_before", "nodes_after", "ms", "rss_bytes")), passes[name]
    # The process's resident memory after the pass: at least the 1 MiB a
    # compiler holds before any model (Linux: /proc/self/statm).
    assert passes[name]["rss_bytes"] > 1 << 20, passes[name]
assert passes["fuse-kernels"]["nodes_after"] < passes["fuse-kernels"]["nodes_before"], passes["fuse-kernels"]
PY
  { echo "FAIL --report lists the program passes"; failed=$((failed + 1)); }

# --time-passes: one table of every pass that ran, the program passes'
# counts being kernels, each with its time and the resident MiB after it;
# --print-after all: the IR (or kernels) after each.
expect "--time-passes" 0 "^fuse-kernels +kernels +[0-9]+ -> +[0-9]+ +[0-9.]+ +[1-9][0-9]*\.[0-9]+$" -- \
  "$kiln" compile "$examples/tiny_cnn/tiny_cnn.onnx" -o "$work/t.so" --time-passes
for row in "infer-shapes +nodes" "fold-constants +nodes" "plan-in-place +kernels" "total +[0-9.]+ +[1-9][0-9]*\.[0-9]+$"; do
  grep -qE "^$row" "$work/err" && echo "PASS --time-passes lists /$row/" && passed=$((passed + 1)) ||
    { echo "FAIL --time-passes lists /$row/"; sed 's/^/  | /' "$work/err"; failed=$((failed + 1)); }
done
expect "--print-after all" 0 "kernels after fuse-kernels" -- \
  "$kiln" compile "$examples/tiny_cnn/tiny_cnn.onnx" -o "$work/t.so" --print-after all --time-passes
ran=$(awk '/^pass +counts/ { table = 1; next } /^total / { table = 0 } table { print $1 }' "$work/err" | sort -u)
printed=$(sed -nE 's/^\/\/ ----- (IR|kernels) after ([a-z-]+) -----$/\2/p' "$work/err" | sort -u)
[ "$(echo "$ran" | wc -l)" -ge 2 ] && [ "$ran" = "$printed" ] &&
  echo "PASS --print-after all prints after every pass" && passed=$((passed + 1)) ||
  { echo "FAIL --print-after all: ran [$(tr '\n' ' ' <<<"$ran")], printed after [$(tr '\n' ' ' <<<"$printed")]"
    failed=$((failed + 1)); }

# A repeatable option takes one value per use: the positional after it stays
# the model or artifact, as in any Unix command line.
expect "repeatable options before the model" 0 "" -- "$kiln" compile --disable-pass fuse-kernels \
  --print-after=fold-constants --passes fold-constants,eliminate-dead-nodes "$examples/tiny_cnn/tiny_cnn.onnx" -o "$work/t.so"
expect "--input before the artifact" 0 "" -- "$kiln" run -i "$case_dir/test_data_set_0/input_0.pb" \
  -i "$case_dir/test_data_set_0/input_1.pb" "$work/c.so"
expect "--shape before the model in inspect" 0 "" -- "$kiln" inspect --shape image=1x3x32x32 "$examples/tiny_cnn/tiny_cnn.onnx"

# Errors past the import name the model file as the importer's do; a long
# shape in one is elided; a run-time check that refuses the inputs' values is
# bad input (exit 2) in run, check, bench and profile alike.
/usr/bin/python3 - "$work" <<'PY'
import os, sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
work = sys.argv[1]
def save(nodes, inputs, name, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", T.FLOAT, None)], list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{work}/{name}")
save([helper.make_node("Add", ["a", "b"], ["y"], name="add0")],
     [helper.make_tensor_value_info("a", T.FLOAT, [2, 3]), helper.make_tensor_value_info("b", T.FLOAT, [4, 5])], "bad_add.onnx")
save([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
     "reshape_rank.onnx", [numpy_helper.from_array(np.ones(100000, dtype=np.int64), "s")])
save([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
     [helper.make_tensor_value_info("x", T.FLOAT, [6]), helper.make_tensor_value_info("s", T.INT64, [2])], "rt_reshape.onnx")
x, s = np.arange(6, dtype=np.float32), np.array([-3, -2], dtype=np.int64)
np.save(f"{work}/x6.npy", x)
np.save(f"{work}/s_bad.npy", s)
os.makedirs(f"{work}/rt_case/test_data_set_0")
for name, t in (("input_0", x), ("input_1", s), ("output_0", x.reshape(2, 3))):
    open(f"{work}/rt_case/test_data_set_0/{name}.pb", "wb").write(numpy_helper.from_array(t).SerializeToString())
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", T.FLOAT, [2])],
                          [helper.make_tensor_value_info("y\nkiln: error: forged", T.FLOAT, [2])])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{work}/newline_name.onnx")
save([helper.make_node("ConstantOfShape", ["shape"], ["y"], name="fill")], [], "four_tib.onnx",
     [numpy_helper.from_array(np.array([1 << 20, 1 << 20], dtype=np.int64), "shape")])
PY
expect_one_line_errors=1
expect "a shape inference error names the model file" 2 \
  "^kiln: error: '$work/bad_add.onnx': pass infer-shapes: Add 'add0': shapes 2x3, 4x5 do not broadcast \(dim 0: 2 vs 4\)$" -- \
  "$kiln" compile "$work/bad_add.onnx" -o "$work/x.so"
expect "a 100000-dim shape in an error is elided" 2 \
  "^kiln: error: '$work/reshape_rank.onnx': pass infer-shapes: Reshape 'r': cannot reshape 2x3 into 1x1x1x1x1x1x1x1x\.\.\.\(99990 more\)x1x1: element counts differ$" -- \
  "$kiln" compile "$work/reshape_rank.onnx" -o "$work/x.so"
expect "a name with a newline stays on the error's one line" 2 \
  "^kiln: error: '$work/newline_name.onnx': graph 'g' output 'y\\\\nkiln: error: forged' is produced by nothing$" -- \
  "$kiln" compile "$work/newline_name.onnx" -o "$work/x.so"
expect "compile a run-time Reshape" 0 "" -- "$kiln" compile "$work/rt_reshape.onnx" -o "$work/rt.so"
bad_target="Reshape 'rs': target shape \[-3x-2\] has an entry below -1, more than one -1, or a 0 past the input's rank 1$"
expect "run: a run-time check refusing the inputs exits 2" 2 "^kiln: error: $bad_target" -- \
  "$kiln" run "$work/rt.so" --input "$work/x6.npy" --input "$work/s_bad.npy"
expect "check: a run-time check refusing the inputs exits 2" 2 "^kiln: error: test_data_set_0: $bad_target" -- \
  "$kiln" check "$work/rt.so" --test-dir "$work/rt_case"
for cmd in bench profile; do
  expect "$cmd: a run-time check refusing the inputs exits 2" 2 "^kiln: error: artifact '$work/rt.so': $bad_target" -- \
    "$kiln" $cmd "$work/rt.so" --input "$work/x6.npy" --input "$work/s_bad.npy"
done
# A file larger than this machine's memory (sparse: no disk used) is refused
# before it is read, as an artifact and as an input.
memory_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
huge=$((memory_kb * 2048 > 1 << 40 ? memory_kb * 2048 : 1 << 40))
truncate -s "$huge" "$work/huge.so"
expect "an artifact larger than memory" 4 \
  "^kiln: error: artifact '$work/huge.so' is $huge bytes, more than this machine's memory \([0-9]+ bytes\)$" -- \
  "$kiln" run "$work/huge.so" --input "$work/x6.npy"
/usr/bin/python3 - "$work/huge.npy" "$huge" <<'PY'
import struct, sys
path, size = sys.argv[1], int(sys.argv[2])
header = "{'descr': '<U1', 'fortran_order': False, 'shape': (%d,), }" % ((size - 128) // 4)
header = header.ljust(117) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.truncate(size)
PY
expect "an input .npy larger than memory" 4 \
  "^kiln: error: '$work/huge.npy' is $huge bytes, more than this machine's memory \([0-9]+ bytes\)$" -- \
  "$kiln" run "$work/rt.so" --input "$work/huge.npy" --input "$work/s_bad.npy"
rm -f "$work/huge.so" "$work/huge.npy"
# An output the model sizes past this machine's memory: the model's demand,
# exit 2 in bench and profile as in run (ASan would abort the allocation, and
# warns of the refused one on stderr: its log goes to a file here; a real
# report still fails the exit code).
expect "compile a model with a 4 TiB output" 0 "" -- "$kiln" compile "$work/four_tib.onnx" -o "$work/four_tib.so"
for cmd in bench profile; do
  expect "$cmd: an output larger than memory exits 2" 2 \
    "^kiln: error: output 0 'y' needs 4398046511104 bytes, more than this machine can allocate$" -- \
    env ASAN_OPTIONS="${ASAN_OPTIONS:-}:allocator_may_return_null=1:log_path=$work/asan_four_tib" \
    "$kiln" $cmd "$work/four_tib.so"
done
# inspect sniffs a file for ELF: a FIFO must be refused, not waited on; a
# missing file is an I/O error (exit 4), as in the other commands.
mkfifo "$work/fifo.onnx"
expect "inspect a FIFO" 4 "^kiln: error: '$work/fifo.onnx' is not a regular file$" -- \
  timeout 30 "$kiln" inspect "$work/fifo.onnx"
expect "inspect a missing file" 4 "^kiln: error: cannot open '$work/missing.onnx'" -- "$kiln" inspect "$work/missing.onnx"
# Loading an artifact opens it without waiting for a writer, too.
mkfifo "$work/fifo.so"
expect "run a FIFO" 4 "^kiln: error: artifact '$work/fifo.so' is not a regular file$" -- \
  timeout 30 "$kiln" run "$work/fifo.so"
expect_one_line_errors=0

# A symbolic batch dim: compiled once, run at two batch sizes; sample 1 of
# the batch of 3 must give what the batch of 1 gives.
/usr/bin/python3 - "$examples/tiny_cnn/tiny_cnn.onnx" "$work" <<'PY'
import sys, numpy as np, onnx
m = onnx.load(sys.argv[1])
for v in (m.graph.input[0], m.graph.output[0]):
    v.type.tensor_type.shape.dim[0].dim_param = "N"
onnx.save(m, sys.argv[2] + "/batch.onnx")
x = np.random.RandomState(0).rand(3, 3, 32, 32).astype(np.float32)
np.save(sys.argv[2] + "/x3.npy", x)
np.save(sys.argv[2] + "/x1.npy", x[1:2])
PY
expect "compile a symbolic batch dim once" 0 "" -- "$kiln" compile "$work/batch.onnx" -o "$work/batch.so"
expect "run it at batch 3" 0 "" -- "$kiln" run "$work/batch.so" --input "$work/x3.npy" --output-dir "$work/b3"
expect "run it at batch 1" 0 "" -- "$kiln" run "$work/batch.so" --input "$work/x1.npy" --output-dir "$work/b1"
/usr/bin/python3 -c "
import sys, numpy as np
y3, y1 = np.load(sys.argv[1]), np.load(sys.argv[2])
assert y3.shape == (3, 10) and y1.shape == (1, 10), (y3.shape, y1.shape)
assert np.allclose(y3[1], y1[0], rtol=1e-5, atol=1e-6), (y3[1], y1[0])" "$work/b3/output_0.npy" "$work/b1/output_0.npy" &&
  echo "PASS batch outputs have the run's shape and agree" && passed=$((passed + 1)) ||
  { echo "FAIL batch outputs"; failed=$((failed + 1)); }
expect "inspect names the symbol" 0 "" -- "$kiln" inspect "$work/batch.so"
grep -q "Nx3x32x32" "$work/out" && echo "PASS inspect shows Nx3x32x32" && passed=$((passed + 1)) ||
  { echo "FAIL inspect shows Nx3x32x32"; sed 's/^/  | /' "$work/out"; failed=$((failed + 1)); }
expect "--shape pins the symbol" 0 "" -- "$kiln" compile "$work/batch.onnx" -o "$work/b2.so" --shape image=2x3x32x32
expect "a pinned artifact refuses another batch" 2 "input 0 'image': shape \[3x3x32x32\], expected \[2x3x32x32\]" -- \
  "$kiln" run "$work/b2.so" --input "$work/x3.npy"

# The output's folder is checked before the compile starts.
expect "an output folder that does not exist" 4 \
  "^kiln: error: cannot write '$work/no-such-folder/x.so': the folder '$work/no-such-folder' does not exist$" -- \
  "$kiln" compile "$examples/tiny_cnn/tiny_cnn.onnx" -o "$work/no-such-folder/x.so"

# --target cuda opens NVRTC when it first needs it (codegen/cuda/nvrtc_api.h),
# so a CPU compile never loads it; one that cannot be opened is a one-line
# error naming the library, exit 3 (unsupported here).
tiny=$examples/tiny_cnn/tiny_cnn.onnx
if "$kiln" compile "$tiny" --target cuda -o "$work/tiny_cuda.so" -q 2>/dev/null; then
  expect "NVRTC that cannot be opened" 3 \
    "^kiln: error: --target cuda needs NVRTC, which could not be opened \(/nonexistent/libnvrtc.so: .*KILN_NVRTC_LIBRARY" -- \
    env KILN_NVRTC_LIBRARY=/nonexistent/libnvrtc.so "$kiln" compile "$tiny" --target cuda -o "$work/x.so"
else
  echo "SKIP NVRTC that cannot be opened: this kiln was built without the CUDA backend (no NVRTC at build time)"
fi

finish cli_test
