#!/usr/bin/env python3
"""Writes tiny_cnn.onnx and input.npy: a small image classifier (Conv, BatchNorm,
Relu, MaxPool, GlobalAveragePool, Flatten, Gemm, Softmax) with fixed
pseudo-random weights. Run with Debian's python3 (python3-onnx, python3-numpy):

    /usr/bin/python3 examples/tiny_cnn/make_model.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(20261125)
here = os.path.dirname(os.path.abspath(__file__))


def weight(name, *shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


initializers = [
    weight("conv1.w", 8, 3, 3, 3),
    weight("conv1.b", 8),
    numpy_helper.from_array(np.linspace(0.5, 1.5, 8).astype(np.float32), "bn1.scale"),
    numpy_helper.from_array(np.linspace(-0.1, 0.1, 8).astype(np.float32), "bn1.bias"),
    numpy_helper.from_array(np.linspace(-0.2, 0.2, 8).astype(np.float32), "bn1.mean"),
    numpy_helper.from_array(np.linspace(0.8, 1.2, 8).astype(np.float32), "bn1.var"),
    weight("conv2.w", 16, 8, 3, 3),
    weight("conv2.b", 16),
    weight("fc.w", 10, 16),
    weight("fc.b", 10),
]
nodes = [
    helper.make_node("Conv", ["image", "conv1.w", "conv1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"], name="bn1"),
    helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
    helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
    helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
    helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
    helper.make_node("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
]
graph = helper.make_graph(
    nodes, "tiny_cnn",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
    initializers)
model = helper.make_model(graph, producer_name="kiln-examples", opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "tiny_cnn.onnx"))
np.save(os.path.join(here, "input.npy"), rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
print("wrote tiny_cnn.onnx and input.npy")
