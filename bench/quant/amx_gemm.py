"""One int8 matrix product (MatMulInteger, uint8 activations x int8 constant
weights -> int32) per shape, compiled by Kiln for AMX tiles and for VNNI,
timed with `kiln bench`: the microkernels alone, without the epilogues and
the other operators of a model. Needs a CPU with AMX (the device machine)
and python3's onnx package.

    /usr/bin/python3 bench/quant/amx_gemm.py --kiln KILN [--work DIR]
        [--shapes 128x768x3072,...] [--threads 1] [--iters 50]

Prints, per shape (M x K x N), each variant's median and its int8 rate
(2 * M * K * N operations per run).
"""
import argparse
import json
import os
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(path, m, k, n):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "w")
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    np.save(path.replace(".onnx", ".npy"), rng.integers(0, 256, size=(m, k), dtype=np.uint8))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--work", default="/tmp/kiln-amx-gemm")
    p.add_argument("--shapes", default="128x768x3072,128x3072x768,128x768x768,1024x1024x1024")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=50)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])
    print(f"| M x K x N | variant | median ms | int8 GOP/s |  ({args.threads} threads)")
    for shape in args.shapes.split(","):
        m, k, n = (int(x) for x in shape.split("x"))
        path = os.path.join(args.work, f"gemm_{shape}.onnx")
        model(path, m, k, n)
        for variant, flags in (("AMX", []), ("VNNI", ["--features=-amx-int8"])):
            artifact = path.replace(".onnx", f"_{variant}.so")
            subprocess.run([args.kiln, "compile", path, "-o", artifact] + flags, check=True, capture_output=True)
            out = subprocess.run([args.kiln, "bench", artifact, "--input", path.replace(".onnx", ".npy"), "--threads",
                                  str(args.threads), "--iters", str(args.iters), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            ms = json.loads(out)["median_ms"]
            print(f"| {shape} | {variant} | {ms:.3f} | {2 * m * k * n / ms / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
