#!/usr/bin/env bash
# `kiln compile --prune`: the one-line errors (syntax, range, nothing
# prunable, --accuracy-budget misuse), magnitude and channel pruning of the
# trained digits models with the report (stderr, JSON, HTML), --emit onnx,
# the pruned artifact checked against an independent NumPy evaluation of the
# pruned model, and --accuracy-budget keeping its promise.
#   prune_test.sh KILN_BINARY SOURCE_DIR
set -uo pipefail
kiln=$1
src=$2
. "$src/tests/tools/lib.sh"
py=/usr/bin/python3
data=$src/tests/data/quant
cnn=$data/digits_cnn.onnx
transformer=$data/digits_transformer.onnx
node_data=/usr/share/libonnx-testdata/data/node

expect_one_line_errors=1

# --- errors: one line, exit 2 --------------------------------------------------
expect "bad --prune syntax" 2 "--prune 'magnitude': expected magnitude:R" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune magnitude
expect "unknown method" 2 "unknown method 'weights'" -- "$kiln" compile "$cnn" -o "$work/x.so" --prune weights:0.5
expect "ratio out of range" 2 "ratio 1.5 is out of range" -- "$kiln" compile "$cnn" -o "$work/x.so" --prune channels:1.5
expect "ratio not a number" 2 "'half' is not a ratio" -- "$kiln" compile "$cnn" -o "$work/x.so" --prune magnitude:half
expect "unknown option" 2 "unknown or repeated option 'blocks'" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune magnitude:0.5:blocks
expect "--accuracy-budget without --prune" 2 "--accuracy-budget needs --prune" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --accuracy-budget 30
expect "--accuracy-budget without data" 2 "--accuracy-budget needs --calibration" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune channels:0.5 --accuracy-budget 30
expect "bad --accuracy-budget" 2 "--accuracy-budget 'loud'" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune channels:0.5 --accuracy-budget loud --calibration "$data/calibration"
if [ -f "$node_data/test_relu/model.onnx" ]; then
  expect "nothing to prune (magnitude)" 2 "nothing can be pruned" -- \
    "$kiln" compile "$node_data/test_relu/model.onnx" -o "$work/x.so" --prune magnitude:0.5
else
  echo "SKIP nothing to prune: $node_data/test_relu is missing (apt-get install libonnx-testdata)"
fi
if [ -f "$node_data/test_basic_conv_without_padding/model.onnx" ]; then
  expect "nothing to prune (channels)" 2 "no channel can be removed" -- \
    "$kiln" compile "$node_data/test_basic_conv_without_padding/model.onnx" -o "$work/x.so" --prune channels:0.5
fi

if ! $py -c 'import numpy, onnx' 2>/dev/null; then
  echo "SKIP the rest of prune_test: /usr/bin/python3 has no numpy/onnx (apt-get install python3-numpy python3-onnx)"
  # Channels of this small CNN cost more than 60 dB allows, even at R/4: refused in one line.
expect "a budget no layer meets" 2 "no layer of the model can be pruned" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune channels:0.5 --accuracy-budget 60dB --calibration "$data/calibration"

finish prune_test
  exit $?
fi

# --- magnitude: global unstructured, report on the validation set -------------
expect "magnitude:0.3" 0 "accuracy of the pruned model against the dense one on 200 validation sets" -- \
  "$kiln" compile "$cnn" -o "$work/m.so" --prune magnitude:0.3 --validation "$data/validation" --report "$work/m.json"
grep -qE "logits: max abs error [0-9.]+, SQNR [0-9.]+ dB, top-1 agreement" "$work/err" &&
  pass "magnitude accuracy line" || fail "magnitude accuracy line" "$work/err"
grep -qE "latency \(median of [0-9]+ interleaved runs\): dense" "$work/err" && pass "latency line" ||
  fail "latency line" "$work/err"
if $py - "$work/m.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["pruning"]
assert p["method"] == "magnitude:0.3", p
assert len(p["layers"]) == 5, p["layers"]
# One global threshold: 30% of all the layers' weights are zero, layers differ.
total = sum(l["params_before"] for l in p["layers"])
assert abs(p["nonzero_after"] - round(total * 0.7)) <= 1, (p["nonzero_after"], total)
assert len({round(l["sparsity"], 3) for l in p["layers"]}) > 1, p["layers"]
assert p["flops_after"] < p["flops_before"], p
out = p["accuracy"]["outputs"][0]
assert out["name"] == "logits" and out["rows"] == 200, out
# This small trained CNN is sensitive (no fine-tuning), but 30% keeps its decisions.
assert out["sqnr_db"] is not None and out["sqnr_db"] > 5 and out["top1_agreement"] >= 0.95, out
PY
then pass "magnitude JSON report"; else fail "magnitude JSON report"; fi

# Compiled for another CPU, the report measures the same pruning: where the
# artifact cannot run here, on a build for this machine, and says so.
if runs_here "$kiln" "$cnn" "$data/validation/set_000/image.npy" sapphirerapids; then host_note=false; else host_note=true; fi
expect "magnitude:0.3 --cpu sapphirerapids" 0 "accuracy of the pruned model against the dense one on 200 validation sets" -- \
  "$kiln" compile "$cnn" -o "$work/m_spr.so" --cpu sapphirerapids --prune magnitude:0.3 --validation "$data/validation" \
  --report "$work/m_spr.json"
if $py - "$work/m.json" "$work/m_spr.json" "$host_note" <<'PY'
import json, sys
here, cross = (json.load(open(f))["pruning"] for f in sys.argv[1:3])
assert cross["accuracy"]["host_build"] == (sys.argv[3] == "true"), cross["accuracy"]
assert here["accuracy"]["host_build"] is False, here["accuracy"]
# The same pruned weights whichever CPU they are built for.
assert here["nonzero_after"] == cross["nonzero_after"], (here["nonzero_after"], cross["nonzero_after"])
a, b = here["accuracy"]["outputs"][0], cross["accuracy"]["outputs"][0]
assert abs(a["sqnr_db"] - b["sqnr_db"]) < 0.5 and a["top1_agreement"] == b["top1_agreement"], (a, b)
PY
then pass "--cpu sapphirerapids: pruning report (host build $host_note)"; else fail "--cpu sapphirerapids: pruning report"; fi

# --- magnitude blocks on the transformer: every zero is in a whole 1x16 block --
expect "magnitude:0.6:block" 0 "pruned \(magnitude:0.6:block\)" -- \
  "$kiln" compile "$transformer" -o "$work/b.onnx" --emit onnx --prune magnitude:0.6:block
if $py - "$work/b.onnx" <<'PY'
import sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
checked = 0
for n in m.graph.node:
    if n.op_type not in ("MatMul", "Gemm") or n.input[1] not in inits:
        continue
    w = inits[n.input[1]]
    if n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute):
        w = w.T  # logical [K, N]
    k, cols = w.shape
    pad = (-cols) % 16
    blocks = np.pad(w, ((0, 0), (0, pad)), constant_values=1.0).reshape(k, -1, 16) if pad else w.reshape(k, -1, 16)
    zero = blocks == 0
    assert np.all(zero.all(axis=2) | ~zero.any(axis=2)), n.name
    checked += 1
assert checked >= 4, checked
PY
then pass "block zeros are whole 1x16 blocks"; else fail "block zeros are whole 1x16 blocks"; fi

# --- channels: shrunk tensors, --emit onnx, kiln check against NumPy ------------
expect "channels:0.5 --emit onnx" 0 "pruned \(channels:0.5\)" -- \
  "$kiln" compile "$cnn" -o "$work/c.onnx" --emit onnx --prune channels:0.5
expect "compile the pruned model" 0 "" -- "$kiln" compile "$work/c.onnx" -o "$work/c_plain.so"
expect "channels:0.5 artifact" 0 "" -- \
  "$kiln" compile "$cnn" -o "$work/c.so" --prune channels:0.5 --validation "$data/validation" --report "$work/c.html"
if $py "$src/tests/tools/prune_reference.py" "$work/c.onnx" "$work/case" "$data"/validation/set_00{0,1,2,3}/image.npy; then
  expect "kiln check: pruned artifact against the pruned model" 0 "" -- \
    "$kiln" check "$work/c.so" --test-dir "$work/case" --rtol 1e-4 --atol 1e-4
  expect "kiln check: the emitted pruned model compiled" 0 "" -- \
    "$kiln" check "$work/c_plain.so" --test-dir "$work/case" --rtol 1e-4 --atol 1e-4
else
  fail "NumPy reference of the pruned model"
fi
if $py - "$work/c.onnx" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1])
dims = {i.name: list(i.dims) for i in m.graph.initializer}
convs = [dims[n.input[1]] for n in m.graph.node if n.op_type == "Conv"]
# stem+residual (16), block a (16), down (32): each halved; readers follow.
assert convs == [[8, 1, 3, 3], [8, 8, 3, 3], [8, 8, 3, 3], [16, 8, 3, 3]], convs
PY
then pass "channels shrink the tensors"; else fail "channels shrink the tensors"; fi
grep -q 'id="pruning"' "$work/c.html" && grep -q 'id="pruning-table"' "$work/c.html" && pass "HTML Pruning section" ||
  fail "HTML Pruning section"

# --- accuracy budget: the chosen ratios keep the promised SQNR -----------------
expect "magnitude with --accuracy-budget 20dB" 0 "accuracy budget SQNR >= 20 dB: ratios chosen" -- \
  "$kiln" compile "$cnn" -o "$work/a.so" --prune magnitude:0.5 --accuracy-budget 20dB \
  --calibration "$data/calibration" --report "$work/a.json"
if $py - "$work/a.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["pruning"]
b = p["accuracy_budget"]
assert b["calibration_sqnr_db"] is None or b["calibration_sqnr_db"] >= 20, b
assert all(0 <= l["ratio"] <= 0.5 for l in b["layers"]), b
assert any(l["ratio"] > 0 for l in b["layers"]), b
# Measured again on the same (calibration) sets after the final compile.
assert p["accuracy"]["data"] == "calibration", p["accuracy"]
assert p["accuracy"]["outputs"][0]["sqnr_db"] is None or p["accuracy"]["outputs"][0]["sqnr_db"] >= 20, p["accuracy"]
PY
then pass "the budget holds"; else fail "the budget holds"; fi

# Channels of this small CNN cost more than 60 dB allows, even at R/4: refused in one line.
expect "a budget no layer meets" 2 "no layer of the model can be pruned" -- \
  "$kiln" compile "$cnn" -o "$work/x.so" --prune channels:0.5 --accuracy-budget 60dB --calibration "$data/calibration"

finish prune_test
