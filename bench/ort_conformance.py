#!/usr/bin/python3
"""The ONNX backend test suite through ONNX Runtime, judged like kiln-conformance.

    /usr/bin/python3 bench/ort_conformance.py [--data DIR] [--out FILE]

Every case under node, pytorch-converted, pytorch-operator and simple
(Debian's libonnx-testdata) is run on each of its data sets by
bench/ort_conformance.js (onnxruntime-node from bench/node_modules, one
thread, all graph optimizations) and compared with the shipped outputs at
kiln-conformance's tolerances (rtol 1e-3, atol 1e-7, NaN matching NaN,
same dtype and shape). Prints per-folder totals as a markdown table (or
writes it to --out). A case whose data is a sequence or optional, or whose
dtype the Node API cannot carry (bfloat16), counts as failed, with that
reason in the log.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = ["node", "pytorch-converted", "pytorch-operator", "simple"]
TYPES = {np.float32: "float32", np.float64: "float64", np.float16: "float16", np.int8: "int8", np.uint8: "uint8",
         np.int16: "int16", np.uint16: "uint16", np.int32: "int32", np.uint32: "uint32", np.int64: "int64",
         np.uint64: "uint64", np.bool_: "bool", np.object_: "string"}
FROM_TYPE = {v: k for k, v in TYPES.items()}


def read_tensor(path):
    proto = onnx.TensorProto()
    with open(path, "rb") as f:
        data = f.read()
    proto.ParseFromString(data)
    if proto.data_type == onnx.TensorProto.BFLOAT16:
        raise ValueError("bfloat16 has no onnxruntime-node tensor type")
    if proto.data_type == 0 and not proto.dims:
        raise ValueError("not a tensor (a sequence or optional)")
    return proto.name, numpy_helper.to_array(proto)


def write_input(folder, index, name, array):
    kind = TYPES.get(array.dtype.type)
    if kind is None:
        raise ValueError(f"dtype {array.dtype} is not supported by the Node API")
    path = os.path.join(folder, f"in_{index}.bin")
    if kind == "string":
        with open(path, "w") as f:
            json.dump([s.decode() if isinstance(s, bytes) else str(s) for s in array.ravel()], f)
    else:
        np.ascontiguousarray(array).tofile(path)
    return {"name": name, "type": kind, "dims": list(array.shape), "file": path}


def matches(got, want):
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype}, expected {want.dtype}"
    if want.dtype == np.object_:
        return None if list(got.ravel()) == [w.decode() if isinstance(w, bytes) else w for w in want.ravel()] else "strings differ"
    if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
        return None if np.array_equal(got, want) else "values differ"
    g, w = got.astype(np.float64), want.astype(np.float64)
    ok = np.isclose(g, w, rtol=1e-3, atol=1e-7) | (np.isnan(g) & np.isnan(w))
    return None if ok.all() else f"max |diff| {np.nanmax(np.abs(g - w)):.3g}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/usr/share/libonnx-testdata/data")
    p.add_argument("--out")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="ort-conformance-")
    plan, verdicts, expected = [], {}, {}
    for folder in FOLDERS:
        for case_dir in sorted(glob.glob(os.path.join(a.data, folder, "*"))):
            key = f"{folder}/{os.path.basename(case_dir)}"
            model_path = os.path.join(case_dir, "model.onnx")
            try:
                model = onnx.load(model_path, load_external_data=False)
                inits = {i.name for i in model.graph.initializer}
                names = [i.name for i in model.graph.input if i.name not in inits]
                sets = []
                for s, set_dir in enumerate(sorted(glob.glob(os.path.join(case_dir, "test_data_set_*")))):
                    out_dir = os.path.join(work, key.replace("/", "__"), str(s))
                    os.makedirs(out_dir)
                    inputs = []
                    for i, f in enumerate(sorted(glob.glob(os.path.join(set_dir, "input_*.pb")),
                                                 key=lambda x: int(x.rsplit("_", 1)[1][:-3]))):
                        _, array = read_tensor(f)
                        inputs.append(write_input(out_dir, i, names[i], array))
                    outs = sorted(glob.glob(os.path.join(set_dir, "output_*.pb")),
                                  key=lambda x: int(x.rsplit("_", 1)[1][:-3]))
                    expected[(key, s)] = [read_tensor(f)[1] for f in outs]
                    sets.append({"dir": out_dir, "inputs": inputs})
                plan.append({"case": key, "model": model_path, "sets": sets})
            except Exception as e:  # noqa: BLE001 - any unreadable case is a failure with its reason
                verdicts[key] = f"not runnable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    plan_path = os.path.join(work, "plan.json")
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    version = subprocess.run(["node", os.path.join(HERE, "ort_conformance.js"), plan_path], check=True,
                             capture_output=True, text=True).stdout.strip()
    for c in plan:
        why = None
        for s, st in enumerate(c["sets"]):
            err = os.path.join(st["dir"], "error.txt")
            if os.path.exists(err):
                why = open(err).read()
                break
            outputs = json.load(open(os.path.join(st["dir"], "outputs.json")))
            want = expected[(c["case"], s)]
            if len(outputs) != len(want):
                why = f"{len(outputs)} outputs, expected {len(want)}"
                break
            for o, w in zip(outputs, want):
                if o["type"] == "string":
                    got = np.array(json.load(open(o["file"])), dtype=object).reshape(o["dims"])
                else:
                    got = np.fromfile(o["file"], dtype=FROM_TYPE[o["type"]]).reshape(o["dims"])
                why = matches(got, w)
                if why:
                    why = f"output '{o['name']}': {why}"
                    break
            if why:
                break
        verdicts[c["case"]] = why
    rows = ["| Folder | Cases | ONNX Runtime pass | Pass % |", "|---|---:|---:|---:|"]
    total = passed = 0
    for folder in FOLDERS:
        keys = [k for k in verdicts if k.startswith(folder + "/")]
        ok = sum(1 for k in keys if verdicts[k] is None)
        rows.append(f"| {folder} | {len(keys)} | {ok} | {100 * ok / max(1, len(keys)):.1f} |")
        total, passed = total + len(keys), passed + ok
    rows.append(f"| **total** | {total} | {passed} | {100 * passed / max(1, total):.1f} |")
    for k in sorted(verdicts):
        if verdicts[k]:
            print(f"FAIL {k}: {verdicts[k]}", file=sys.stderr)
    text = f"ONNX Runtime {version} (onnxruntime-node, CPU, 1 thread)\n\n" + "\n".join(rows) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
