#!/usr/bin/python3
"""Writes bert_block.onnx: one small BERT-style encoder layer in the form
PyTorch's exporter writes at opset 13 (LayerNorm and GELU decomposed into
elementwise ops and reductions, attention as MatMul/Softmax/Transpose).
Weights are random with a fixed seed, so the file is reproducible.

    /usr/bin/python3 tests/passes/make_bert_block.py tests/passes/bert_block.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEQ, HIDDEN, HEADS, FFN = 8, 32, 2, 64
HEAD = HIDDEN // HEADS
rng = np.random.default_rng(7)
nodes, inits = [], []


def const(name, array):
    inits.append(numpy_helper.from_array(np.asarray(array), name))
    return name


def weight(name, *shape, scale=0.2):
    return const(name, (rng.standard_normal(shape) * scale).astype(np.float32))


def node(op, inputs, name, **attrs):
    nodes.append(helper.make_node(op, inputs, [name], name=name + "_node", **attrs))
    return name


def layer_norm(x, prefix):
    mean = node("ReduceMean", [x], prefix + "_mean", axes=[-1], keepdims=1)
    centered = node("Sub", [x, mean], prefix + "_centered")
    sq = node("Pow", [centered, const(prefix + "_two", np.float32(2.0))], prefix + "_sq")
    var = node("ReduceMean", [sq], prefix + "_var", axes=[-1], keepdims=1)
    var_eps = node("Add", [var, const(prefix + "_eps", np.float32(1e-5))], prefix + "_var_eps")
    std = node("Sqrt", [var_eps], prefix + "_std")
    normed = node("Div", [centered, std], prefix + "_normed")
    scaled = node("Mul", [normed, weight(prefix + "_gamma", HIDDEN)], prefix + "_scaled")
    return node("Add", [scaled, weight(prefix + "_beta", HIDDEN)], prefix + "_out")


def linear(x, prefix, n_in, n_out):
    mm = node("MatMul", [x, weight(prefix + "_w", n_in, n_out)], prefix + "_mm")
    return node("Add", [mm, weight(prefix + "_b", n_out)], prefix + "_out")


def heads(x, prefix):
    r = node("Reshape", [x, const(prefix + "_shape", np.array([1, SEQ, HEADS, HEAD], np.int64))], prefix + "_split")
    return node("Transpose", [r], prefix + "_heads", perm=[0, 2, 1, 3])


x = "x"
q = heads(linear(x, "q", HIDDEN, HIDDEN), "q")
k = heads(linear(x, "k", HIDDEN, HIDDEN), "k")
v = heads(linear(x, "v", HIDDEN, HIDDEN), "v")
kt = node("Transpose", [k], "kt", perm=[0, 1, 3, 2])
scores = node("MatMul", [q, kt], "scores")
scaled = node("Div", [scores, const("sqrt_d", np.float32(np.sqrt(HEAD)))], "scores_scaled")
probs = node("Softmax", [scaled], "probs", axis=-1)
ctx = node("MatMul", [probs, v], "ctx")
ctx_t = node("Transpose", [ctx], "ctx_t", perm=[0, 2, 1, 3])
merged = node("Reshape", [ctx_t, const("merge_shape", np.array([1, SEQ, HIDDEN], np.int64))], "ctx_merged")
attn = linear(merged, "o", HIDDEN, HIDDEN)
h1 = layer_norm(node("Add", [attn, x], "res1"), "ln1")
up = linear(h1, "up", HIDDEN, FFN)
# GELU as exported: 0.5 * x * (1 + erf(x / sqrt(2)))
erf = node("Erf", [node("Div", [up, const("sqrt2", np.float32(np.sqrt(2.0)))], "gelu_div")], "gelu_erf")
gelu = node("Mul", [node("Mul", [up, node("Add", [erf, const("one", np.float32(1.0))], "gelu_add")], "gelu_mul"),
                    const("half", np.float32(0.5))], "gelu")
down = linear(gelu, "down", FFN, HIDDEN)
y = layer_norm(node("Add", [down, h1], "res2"), "ln2")
nodes.append(helper.make_node("Identity", [y], ["y"], name="output"))

graph = helper.make_graph(nodes, "bert_block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, SEQ, HIDDEN])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, SEQ, HIDDEN])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="kiln-tests")
model.ir_version = 7
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
