"""BERT-base's GEMM shapes at batch 32 (4096 tokens): Kiln's cuBLASLt GEMM
against PyTorch's fp16 matmul (cuBLAS) on the same shapes, on the GPU
machine:

    python3 bench/gpu/gemm_rate.py --kiln KILN --runtime LIBKILN_RT --out DIR [--runs 50]

Each shape is a one-node model, x[M, K] @ W[K, N] + b (a Linear), compiled
with --cuda-precision fp16. Kiln's time is the GPU time of the cuBLASLt
kernels in a run (PyTorch's profiler; the packing that converts the float32
model input to fp16 is not counted: inside BERT the GEMMs read 16-bit
copies). PyTorch's is torch.addmm on fp16 tensors (cuBLAS), its kernels'
GPU time measured the same way: both without launch gaps.
Writes DIR/gemm_rate.md.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnx
import onnx.helper as oh
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402

# (what, M, K, N) for BERT-base at batch 32, sequence 128.
SHAPES = [("Q/K/V and output projections", 4096, 768, 768), ("FFN up", 4096, 768, 3072),
          ("FFN down", 4096, 3072, 768)]


def linear_model(path, m, k, n):
    rng = np.random.default_rng(0)
    w = oh.make_tensor("w", onnx.TensorProto.FLOAT, [k, n], rng.uniform(-0.5, 0.5, (k, n)).astype(np.float32).ravel())
    b = oh.make_tensor("b", onnx.TensorProto.FLOAT, [n], rng.uniform(-0.5, 0.5, n).astype(np.float32))
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["mm"]), oh.make_node("Add", ["mm", "b"], ["y"])],
                          "linear", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [m, k])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [m, n])], [w, b])
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), path)


def kiln_gemm_us(args, lib, m, k, n):
    folder = os.path.join(args.out, f"linear_{m}x{k}x{n}")
    os.makedirs(folder, exist_ok=True)
    onnx_path, art = os.path.join(folder, "model.onnx"), os.path.join(folder, "kiln_fp16.so")
    linear_model(onnx_path, m, k, n)
    gpu_bench.compile_kiln(args.kiln, onnx_path, art, "fp16")
    model = gpu_bench.KilnModel(lib, art, None)
    x = torch.rand(m, k, device="cuda") - 0.5
    out = torch.empty(model.output_shape(), dtype=torch.float32, device="cuda")
    for _ in range(10):
        model.run_device(x, out)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.runs):
            model.run_device(x, out)
        torch.cuda.synchronize()
    return gpu_us(prof) / args.runs


def gpu_us(prof):
    """GPU time of the profiled kernels, Kiln's generated ones (the input's
    packing, `k<N>_...`) and copies left out."""
    total = 0.0
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA or re.match(r"k\d+_", e.name):
            continue
        if "Memset" in e.name or "Memcpy" in e.name:
            continue
        total += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
    return total


def torch_gemm_us(args, m, k, n):
    x = (torch.rand(m, k, device="cuda") - 0.5).half()
    w = (torch.rand(k, n, device="cuda") - 0.5).half()
    b = (torch.rand(n, device="cuda") - 0.5).half()
    for _ in range(10):
        torch.addmm(b, x, w)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.runs):
            torch.addmm(b, x, w)
        torch.cuda.synchronize()
    return gpu_us(prof) / args.runs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--runtime", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=50)
    args = p.parse_args()
    lib = gpu_bench.load_runtime(args.runtime)
    lines = [f"# BERT-base batch 32 GEMMs, fp16: Kiln's cuBLASLt GEMM against torch.addmm ({torch.cuda.get_device_name(0)}, "
             f"PyTorch {torch.__version__}, {args.runs} runs)", "",
             f"Written by `bench/gpu/device.sh BUNDLE OUT gemmrate --runs {args.runs}` (bench/gpu/gemm_rate.py); not "
             "edited by hand. GPU time per GEMM from PyTorch's profiler for both (no launch gaps). Kiln's D is the "
             "float32 model output, PyTorch's fp16; inside BERT-base an FFN-up GEMM writes a 16-bit D for its GELU "
             "epilogue instead.", "",
             "| GEMM | M x K x N | Kiln us | Kiln TFLOP/s | PyTorch us | PyTorch TFLOP/s | Kiln / PyTorch rate |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for what, m, k, n in SHAPES:
        flop = 2.0 * m * k * n
        kiln, ref = kiln_gemm_us(args, lib, m, k, n), torch_gemm_us(args, m, k, n)
        lines.append(f"| {what} | {m}x{k}x{n} | {kiln:.1f} | {flop / kiln / 1e6:.0f} | {ref:.1f} | "
                     f"{flop / ref / 1e6:.0f} | {ref / kiln:.2f} |")
    text = "\n".join(lines)
    with open(os.path.join(args.out, "gemm_rate.md"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
