"""An independent reference for the pruned digits CNN: evaluates an ONNX
model of Conv (group 1), Relu, Add, GlobalAveragePool, Flatten, Gemm and
MatMul with NumPy, and writes an ONNX backend test case (test_data_set_K/
input_0.pb, output_0.pb) that `kiln check --test-dir` compares an artifact
with.

  prune_reference.py MODEL.onnx OUT_DIR IMAGE.npy [IMAGE.npy ...]
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, a):
    if a.get("group", 1) != 1:
        raise SystemExit("prune_reference.py: grouped Conv is not supported")
    pads = a.get("pads", [0, 0, 0, 0])
    sh, sw = a.get("strides", [1, 1])
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, m, oh, ow), np.float64)
    for r in range(kh):
        for s in range(kw):
            patch = x[:, :, r:r + sh * oh:sh, s:s + sw * ow:sw]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, r, s])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def gemm(x, w, c, a):
    if a.get("transA", 0):
        x = x.T
    if a.get("transB", 0):
        w = w.T
    y = a.get("alpha", 1.0) * (x @ w)
    return y + a.get("beta", 1.0) * c if c is not None else y


def run(model, feeds):
    env = dict(feeds)
    for init in model.graph.initializer:
        env[init.name] = numpy_helper.to_array(init).astype(np.float64)
    for node in model.graph.node:
        x = [env[i] if i else None for i in node.input]
        a = attrs(node)
        op = node.op_type
        if op == "Conv":
            y = conv(x[0], x[1], x[2] if len(x) > 2 else None, a)
        elif op == "Relu":
            y = np.maximum(x[0], 0)
        elif op == "Add":
            y = x[0] + x[1]
        elif op == "GlobalAveragePool":
            y = x[0].mean(axis=(2, 3), keepdims=True)
        elif op == "Flatten":
            y = x[0].reshape(x[0].shape[0], -1)
        elif op == "Gemm":
            y = gemm(x[0], x[1], x[2] if len(x) > 2 else None, a)
        elif op == "MatMul":
            y = x[0] @ x[1]
        else:
            raise SystemExit(f"prune_reference.py: op {op} ('{node.name}') is not supported")
        env[node.output[0]] = y
    return [env[o.name] for o in model.graph.output]


def main():
    model = onnx.load(sys.argv[1])
    out_dir = sys.argv[2]
    name = model.graph.input[0].name
    for k, image in enumerate(sys.argv[3:]):
        x = np.load(image)
        outputs = run(model, {name: x.astype(np.float64)})
        case = os.path.join(out_dir, f"test_data_set_{k}")
        os.makedirs(case, exist_ok=True)
        with open(os.path.join(case, "input_0.pb"), "wb") as f:
            f.write(numpy_helper.from_array(x.astype(np.float32), name).SerializeToString())
        for i, y in enumerate(outputs):
            with open(os.path.join(case, f"output_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(y.astype(np.float32), model.graph.output[i].name).SerializeToString())


main()
