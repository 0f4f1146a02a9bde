#!/usr/bin/python3
"""Writes a one-MatMul ONNX model, activation a [M, K] times a constant weight
w [K, N] of standard-normal values from a fixed seed, optionally magnitude-
pruned: in 1x16 blocks (one k, 16 consecutive n: the blocks Kiln's sparse
kernels skip) or element by element, keeping the given density.

  matmul_model.py OUT.onnx M K N [--block-density D | --density D] [--seed S]

Used by bench/gemm.sh (dense) and bench/sparse_gemm.sh (pruned)."""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCK = 16


def block_prune(w, density):
    """Zeroes the 1x16 blocks of smallest L2 norm, keeping `density` of them."""
    k, n = w.shape
    blocks = -(-n // BLOCK)
    padded = np.zeros((k, blocks * BLOCK), np.float32)
    padded[:, :n] = w
    norms = np.linalg.norm(padded.reshape(k, blocks, BLOCK), axis=2)
    keep = int(round(density * norms.size))
    mask = np.zeros(norms.size, bool)
    mask[np.argsort(-norms, axis=None, kind="stable")[:keep]] = True
    return (padded.reshape(k, blocks, BLOCK) * mask.reshape(k, blocks, 1)).reshape(k, -1)[:, :n]


def prune(w, density):
    """Zeroes the elements of smallest magnitude, keeping `density` of them."""
    keep = int(round(density * w.size))
    mask = np.zeros(w.size, bool)
    mask[np.argsort(-np.abs(w), axis=None, kind="stable")[:keep]] = True
    return w * mask.reshape(w.shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("m", type=int)
    p.add_argument("k", type=int)
    p.add_argument("n", type=int)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--block-density", type=float)
    group.add_argument("--density", type=float)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    w = np.random.default_rng(a.seed).standard_normal((a.k, a.n)).astype(np.float32)
    if a.block_density is not None:
        w = block_prune(w, a.block_density)
    elif a.density is not None:
        w = prune(w, a.density)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"], name="gemm")], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [a.m, a.k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [a.m, a.n])],
                              [numpy_helper.from_array(w.astype(np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), a.out)


if __name__ == "__main__":
    main()
