#!/usr/bin/env bash
# Keeps the trained-model data in tests/data/quant honest: the committed models
# (trained on scikit-learn's digits by bench/quant/train.py --tests-data) compile
# and run through the kiln CLI, match PyTorch's logits, and reach the held-out
# accuracy stated in accuracy.json on the 200 committed validation samples;
# the calibration and validation sets follow docs/quantization.md's layout and
# share no image.
#   quant_data_test.sh KILN_BINARY SOURCE_DIR
set -uo pipefail
kiln=$1
data=$2/tests/data/quant
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

if ! $py -c 'import numpy, onnx' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 lacks numpy or onnx (Debian python3-numpy, python3-onnx; scripts/install-deps.sh installs them)"
  exit 77
fi
pass() { echo "PASS $1"; passed=$((passed + 1)); }
# A failure prints the last line of the step's stderr: kiln's one-line error or the assertion's message.
fail() { echo "FAIL $1"; [ -s "$work/err" ] && grep -v '^ *$' "$work/err" | tail -n 1 | sed 's/^/  | /'; failed=$((failed + 1)); }

# The folders: 32 calibration sets and 200 validation sets of one [1,1,8,8]
# float32 image.npy each, pixels in [0, 1], labels 0..9 with every class, no
# image in both.
if $py - "$data" "$work" >"$work/err" 2>&1 <<'EOF'
import os, sys
import numpy as np
data = sys.argv[1]
def sets(name, want):
    folder = os.path.join(data, name)
    names = sorted(os.listdir(folder))
    assert names == [f"set_{i:03d}" for i in range(want)], f"{name}: {len(names)} sets, expected {want}"
    images = []
    for n in names:
        files = os.listdir(os.path.join(folder, n))
        assert files == ["image.npy"], f"{name}/{n}: holds {files}, expected image.npy"
        x = np.load(os.path.join(folder, n, "image.npy"))
        assert x.dtype == np.float32 and x.shape == (1, 1, 8, 8), f"{name}/{n}: {x.dtype} {x.shape}"
        assert 0 <= x.min() and x.max() <= 1 and x.max() > 0, f"{name}/{n}: pixels outside [0, 1] or blank"
        images.append(x)
    return np.concatenate(images)
cal, val = sets("calibration", 32), sets("validation", 200)
labels = np.load(os.path.join(data, "validation_labels.npy"))
assert labels.dtype == np.int64 and labels.shape == (200,), f"labels: {labels.dtype} {labels.shape}"
assert set(labels.tolist()) == set(range(10)), "labels: not every digit 0..9 is present"
shared = {c.tobytes() for c in cal} & {v.tobytes() for v in val}
assert not shared, f"{len(shared)} images are both calibration and validation data"
np.save(os.path.join(sys.argv[2], "validation_batch.npy"), val)
EOF
then pass "calibration and validation sets: layout, dtype, shape, disjoint"; else fail "calibration and validation sets"; fi

models=$($py -c 'import json, sys; print(" ".join(sorted(json.load(open(sys.argv[1])))))' "$data/accuracy.json" 2>"$work/err")
[ -n "$models" ] && pass "accuracy.json names the models: $models" || fail "accuracy.json names the models"
for model in $models; do
  # Batch 1, as committed: the artifact a calibration run would build; one sample against PyTorch.
  if "$kiln" compile "$data/$model.onnx" -o "$work/$model.so" 2>"$work/err" &&
    "$kiln" run "$work/$model.so" --input "$data/validation/set_000/image.npy" --output-dir "$work/$model.1" \
      >/dev/null 2>"$work/err" &&
    $py -c '
import sys, numpy as np
got, want = np.load(sys.argv[1]), np.load(sys.argv[2])[:1]
err = float(np.abs(got - want).max())
assert got.shape == want.shape and err <= 1e-4, f"shape {got.shape}, max |kiln - torch| {err}"
' "$work/$model.1/output_0.npy" "$data/${model}_logits.npy" 2>"$work/err"; then
    pass "$model: batch-1 model compiles, runs, matches PyTorch on a validation sample"
  else
    fail "$model: batch-1 model compiles, runs, matches PyTorch on a validation sample"
  fi

  # All 200 validation samples in one run: the same graph with its input's batch dim set to 200
  # (the models bake no batch size into their Reshapes), then held-out top-1 against the labels.
  if $py -c '
import sys, onnx
m = onnx.load(sys.argv[1])
for v in list(m.graph.input) + list(m.graph.output):
    v.type.tensor_type.shape.dim[0].dim_value = 200
onnx.save(m, sys.argv[2])
' "$data/$model.onnx" "$work/$model.200.onnx" 2>"$work/err" &&
    "$kiln" compile "$work/$model.200.onnx" -o "$work/$model.200.so" 2>"$work/err" &&
    "$kiln" run "$work/$model.200.so" --input "$work/validation_batch.npy" --output-dir "$work/$model.200" \
      >/dev/null 2>"$work/err" &&
    $py -c '
import json, sys, numpy as np
model, out, data = sys.argv[1:4]
got = np.load(out)
want = np.load(f"{data}/{model}_logits.npy")
labels = np.load(f"{data}/validation_labels.npy")
stated = json.load(open(f"{data}/accuracy.json"))[model]["validation_top1"]
assert got.shape == (200, 10), f"output shape {got.shape}"
err = float(np.abs(got - want).max())
agree = int((got.argmax(1) == want.argmax(1)).sum())
top1 = float((got.argmax(1) == labels).mean())
print(f"{model}: held-out top-1 {top1:.3f} (stated {stated:.3f}), top-1 agreement with PyTorch {agree}/200, "
      f"max |kiln - torch| {err:.2e}")
assert stated >= 0.95, f"accuracy.json states {stated}: below the 0.95 a trained digits model reaches"
assert err <= 1e-3, f"max |kiln - torch| = {err} over 1e-3"
assert agree >= 199, f"kiln and PyTorch pick the same digit on only {agree} of 200"
assert top1 >= stated - 0.005, f"held-out top-1 {top1} below the stated {stated}"
' "$model" "$work/$model.200/output_0.npy" "$data" >"$work/acc" 2>"$work/err"; then
    pass "$(cat "$work/acc")"
  else
    fail "$model: held-out accuracy of the 200 validation samples"
  fi
done

echo "quant_data_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
