#!/usr/bin/env bash
# `kiln compile --quantize`: static int8 with each calibration method, dynamic
# int8, the accuracy report (stderr and --report JSON), the QDQ export, and the
# one-line errors for bad calibration data.
#   quantize_test.sh KILN_BINARY SOURCE_DIR
set -uo pipefail
kiln=$1
src=$2
. "$src/tests/tools/lib.sh"
py=/usr/bin/python3
tiny=$src/examples/tiny_cnn/tiny_cnn.onnx

expect_one_line_errors=1

if ! $py -c 'import numpy' 2>/dev/null; then
  echo "SKIP quantize_test: /usr/bin/python3 has no numpy to write the calibration data (apt-get install python3-numpy)"
  exit 77
fi

# Calibration data for tiny_cnn: four sets of seeded random images, one named
# after the input, one by position.
$py - "$work" <<'PY'
import os, sys, numpy as np
work = sys.argv[1]
rng = np.random.default_rng(5)
def save(folder, name, array):
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, name), array)
for i in range(4):
    save(f"{work}/calib/set_{i}", "image.npy" if i % 2 == 0 else "input_0.npy",
         rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
for i in range(2):
    save(f"{work}/valid/set_{i}", "image.npy", rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
save(f"{work}/bad_shape/set_0", "image.npy", np.zeros((1, 3, 16, 16), np.float32))
save(f"{work}/bad_dtype/set_0", "image.npy", np.zeros((1, 3, 32, 32), np.float64))
save(f"{work}/bad_name/set_0", "picture.npy", np.zeros((1, 3, 32, 32), np.float32))
save(f"{work}/second_set_shape/a", "image.npy", np.zeros((1, 3, 32, 32), np.float32))
save(f"{work}/second_set_shape/b", "image.npy", np.zeros((1, 3, 32, 32, 1), np.float32))
os.makedirs(f"{work}/missing_input/set_0")
os.makedirs(f"{work}/empty")
PY

expect "int8 minmax" 0 "accuracy of the quantized model against float32 on 4 calibration sets" -- \
  "$kiln" compile "$tiny" -o "$work/q.so" --quantize int8 --calibration "$work/calib" --report "$work/q.json"
grep -qE "probabilities: max abs error [0-9.]+, SQNR [0-9.]+ dB, top-1 agreement" "$work/err" &&
  pass "accuracy line per output" || fail "accuracy line per output" "$work/err"
grep -qE "calibrated [0-9]+ tensors on 4 sets \(minmax\)" "$work/err" && pass "calibration summary" ||
  fail "calibration summary" "$work/err"
# The report carries the numbers; softmax outputs of random data keep most of their signal.
if $py - "$work/q.json" <<'PY'
import json, sys
acc = json.load(open(sys.argv[1]))["accuracy"]
assert acc["data"] == "calibration" and acc["sets"] == 4, acc
out = acc["outputs"][0]
assert out["name"] == "probabilities" and out["rows"] == 4, out  # one row per set
assert out["sqnr_db"] is not None and out["sqnr_db"] > 15, out
assert 0 <= out["max_abs_error"] < 0.2, out
PY
then pass "report JSON accuracy"; else fail "report JSON accuracy"; fi
expect "run the int8 artifact" 0 "" -- "$kiln" run "$work/q.so" --input "$work/valid/set_0/image.npy"
expect "the int8 graph has QLinearConv" 0 "" -- \
  "$kiln" compile "$tiny" -o "$work/q.txt" --emit graph --quantize int8 --calibration "$work/calib"
grep -q "QLinearConv" "$work/q.txt" && pass "QLinearConv in the folded graph" || fail "QLinearConv in the folded graph" "$work/q.txt"

expect "int8 percentile with validation" 0 "on 2 validation sets" -- \
  "$kiln" compile "$tiny" -o "$work/p.so" --quantize int8 --calibration "$work/calib" \
  --calibration-method percentile --percentile 99.9 --validation "$work/valid" --report "$work/p.html"
grep -q 'id="accuracy-table"' "$work/p.html" && grep -q "<code>probabilities</code>" "$work/p.html" &&
  pass "HTML report has the Accuracy section" || fail "HTML report has the Accuracy section"
expect "int8 entropy" 0 "\(entropy\)" -- \
  "$kiln" compile "$tiny" -o "$work/e.so" --quantize int8 --calibration "$work/calib" --calibration-method entropy
expect "dynamic int8" 0 "on 2 validation sets" -- \
  "$kiln" compile "$tiny" -o "$work/d.so" --quantize dynamic-int8 --validation "$work/valid"

# Compiling for another CPU: calibration and the accuracy report run on this
# machine, so where the target's artifact cannot run here they use a build for
# this host and say so.
if runs_here "$kiln" "$tiny" "$work/valid/set_0/image.npy" sapphirerapids; then host_note=false; else host_note=true; fi
for mode in int8 dynamic-int8; do
  if [ "$mode" = int8 ]; then data=(--calibration "$work/calib"); else data=(--validation "$work/valid"); fi
  expect "--quantize $mode --cpu sapphirerapids" 0 "accuracy of the quantized model against float32" -- \
    "$kiln" compile "$tiny" -o "$work/x.so" --cpu sapphirerapids --quantize "$mode" "${data[@]}" --report "$work/x.json"
  if grep -q "measured on a build for this machine" "$work/err"; then said=true; else said=false; fi
  json=$($py -c 'import json, sys; print(str(json.load(open(sys.argv[1]))["accuracy"]["host_build"]).lower())' "$work/x.json")
  [ "$said" = "$host_note" ] && [ "$json" = "$host_note" ] &&
    pass "--quantize $mode --cpu sapphirerapids: host build $host_note" ||
    fail "--quantize $mode --cpu sapphirerapids: expected host build $host_note, stderr says $said, JSON $json" "$work/err"
done

# The QDQ export (-O0: no fold-qdq) is a valid ONNX model.
expect "emit QDQ onnx" 0 "" -- \
  "$kiln" compile "$tiny" -o "$work/qdq.onnx" --emit onnx -O0 --quantize int8 --calibration "$work/calib"
if $py -c 'import onnx' 2>/dev/null; then
  if $py - "$work/qdq.onnx" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
ops = [n.op_type for n in m.graph.node]
assert ops.count("QuantizeLinear") >= 3 and "DequantizeLinear" in ops, ops
int8 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
assert len(int8) == 2, [t.name for t in m.graph.initializer]
PY
  then pass "QDQ export passes onnx.checker"; else fail "QDQ export passes onnx.checker"; fi
else
  echo "SKIP QDQ export check: /usr/bin/python3 has no onnx module (apt-get install python3-onnx)"
fi
# ONNX Runtime loads and runs the QDQ export, close to the float32 model (bench/'s onnxruntime-node).
ort=$src/bench/node_modules/onnxruntime-node
if [ -d "$ort" ] && command -v node >/dev/null; then
  cat >"$work/ort_check.js" <<'JS'
// node ort_check.js ORT_DIR FP32.onnx QDQ.onnx INPUT.npy: prints the QDQ model's SQNR against float32.
const [ortDir, fp32, qdq, npy] = process.argv.slice(2);
const ort = require(ortDir), fs = require('fs');
const b = fs.readFileSync(npy), hl = b.readUInt16LE(8), hdr = b.slice(10, 10 + hl).toString();
const shape = hdr.match(/\(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
const x = new ort.Tensor('float32', new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + b.length)), shape);
(async () => {
  const run = async (path) => { const s = await ort.InferenceSession.create(path, {logSeverityLevel: 3});
    return (await s.run({[s.inputNames[0]]: x}))[s.outputNames[0]].data; };
  const want = await run(fp32), got = await run(qdq);
  let sig = 0, noise = 0;
  for (let i = 0; i < want.length; i++) { sig += want[i] ** 2; noise += (want[i] - got[i]) ** 2; }
  console.log((10 * Math.log10(sig / noise)).toFixed(1));
})().catch(e => { console.error(e.message); process.exit(1); });
JS
  if db=$(node "$work/ort_check.js" "$ort" "$tiny" "$work/qdq.onnx" "$work/valid/set_0/image.npy" 2>"$work/err") &&
    awk -v d="$db" 'BEGIN { exit !(d > 20) }'; then
    pass "ONNX Runtime runs the QDQ export (SQNR $db dB against float32)"
  else
    fail "ONNX Runtime runs the QDQ export (SQNR '${db:-}' dB, want > 20)" "$work/err"
  fi
else
  echo "SKIP ONNX Runtime check of the QDQ export: bench/node_modules/onnxruntime-node is not installed (bench/README.md)"
fi
expect "quantizing a quantized model" 2 "already quantized \(it has QuantizeLinear" -- \
  "$kiln" compile "$work/qdq.onnx" -o "$work/x.so" --quantize int8 --calibration "$work/calib"
expect "the QDQ export compiles and folds" 0 "" -- "$kiln" compile "$work/qdq.onnx" -o "$work/x.txt" --emit graph
grep -q "QLinearConv" "$work/x.txt" && pass "imported QDQ folds to QLinearConv" ||
  fail "imported QDQ folds to QLinearConv" "$work/x.txt"

# Bad input: one line naming the folder or file, exit 2 (4 for an unreadable folder).
expect "int8 without --calibration" 2 "--quantize int8 needs --calibration DIR" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8
expect "--calibration without --quantize" 2 "--calibration needs --quantize int8" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --calibration "$work/calib"
expect "--percentile without its method" 2 "--percentile needs --calibration-method percentile" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/calib" --percentile 99
expect "missing calibration folder" 4 "--calibration: '$work/nope' is not a folder" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/nope"
expect "empty calibration folder" 2 "--calibration: '$work/empty' has no input sets" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/empty"
expect "a set missing an input" 2 "set '$work/missing_input/set_0' has no file for input 0 'image'" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/missing_input"
expect "a file naming no input" 2 "'$work/bad_name/set_0/picture.npy' names no model input \(inputs: image" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/bad_name"
expect "wrong shape" 2 "'$work/bad_shape/set_0/image.npy' has shape 1x3x16x16, but input 'image' is 1x3x32x32" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/bad_shape"
expect "wrong dtype" 2 "'$work/bad_dtype/set_0/image.npy' has dtype float64, but input 'image' is float32" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize int8 --calibration "$work/bad_dtype"
expect "budget with dynamic-int8" 2 "--accuracy-budget with --quantize needs int8" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize dynamic-int8 --accuracy-budget 30
expect "bad validation set" 2 "--validation: '$work/second_set_shape/b/image.npy' has shape 1x3x32x32x1" -- \
  "$kiln" compile "$tiny" -o "$work/x.so" --quantize dynamic-int8 --validation "$work/second_set_shape"

# Real data: the trained digits CNN keeps its predictions on held-out images.
digits=$src/tests/data/quant
if [ -f "$digits/digits_cnn.onnx" ]; then
  expect "digits CNN int8" 0 "" -- "$kiln" compile "$digits/digits_cnn.onnx" -o "$work/digits.so" --quantize int8 \
    --calibration "$digits/calibration" --validation "$digits/validation" --report "$work/digits.json"
  if $py - "$work/digits.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))["accuracy"]["outputs"][0]
# 200 held-out digits: at least 98% of them keep the float32 prediction.
assert out["top1_agreement"] >= 0.98 and out["sqnr_db"] > 20, out
print(out)
PY
  then pass "digits CNN int8 agrees with float32"; else fail "digits CNN int8 agrees with float32"; fi
  # Mixed precision: 45 dB is above what all-int8 reaches on this CNN (about 37 dB), so the most
  # sensitive layers stay float32; 20 dB is met by all-int8 at once.
  expect "accuracy budget keeps layers in float32" 0 \
    "accuracy budget SQNR >= 45 dB: [1-9][0-9]* of [0-9]+ quantizable layers kept in float32" -- \
    "$kiln" compile "$digits/digits_cnn.onnx" -o "$work/digits_b.so" --quantize int8 --calibration "$digits/calibration" \
    --accuracy-budget 45dB --report "$work/budget.json"
  if $py - "$work/budget.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["accuracy"]["accuracy_budget"]
assert b["met"] and b["calibration_sqnr_db"] >= 45, b
assert 0 < b["float_layers"] < b["quantizable_layers"], b  # some layers stay int8
floats = [l for l in b["layers"] if l["float"]]
assert len(floats) == b["float_layers"] and b["layers"][:len(floats)] == floats, b  # the most sensitive ones
PY
  then pass "budget report: met, the most sensitive layers in float32"; else fail "budget report"; fi
  expect "accuracy budget met by all-int8" 0 "accuracy budget SQNR >= 20 dB: 0 of [0-9]+ quantizable layers" -- \
    "$kiln" compile "$digits/digits_cnn.onnx" -o "$work/digits_b.so" --quantize int8 --calibration "$digits/calibration" \
    --accuracy-budget 20
  # Entropy calibration on blank-heavy images (most pixels are 0): the zero spike must not pull the threshold down.
  expect "digits CNN int8 entropy" 0 "top-1 agreement (99|100)\.[0-9]+%" -- "$kiln" compile "$digits/digits_cnn.onnx" \
    -o "$work/digits_e.so" --quantize int8 --calibration "$digits/calibration" --calibration-method entropy \
    --validation "$digits/validation"
else
  echo "SKIP digits CNN: tests/data/quant/digits_cnn.onnx is not there"
fi

finish quantize_test
