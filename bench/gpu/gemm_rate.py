"""BERT-base's GEMM shapes at batch 32 (4096 tokens): Kiln's cuBLASLt GEMMs
against PyTorch's fp16 matmul (cuBLAS) on the same shapes, on the GPU
machine:

    python3 bench/gpu/gemm_rate.py --kiln KILN --runtime LIBKILN_RT --out DIR [--runs 50]

Kiln's GEMMs run as they do inside BERT-base: one model chains four Linear
layers (x[M, K] @ W[K, N] + b), 768 -> 768 (the Q/K/V and output
projections), 768 -> 3072 (FFN up), 3072 -> 768 (FFN down), 768 -> 768,
compiled with --cuda-precision fp16, so each of the first three reads a
16-bit A and writes a 16-bit D with its bias, as BERT-base's projections
and FFN-up GEMM do (its output projection and FFN-down GEMM also accumulate
the residual as C). A one-Linear model would time a float32 D: the model's
output. The fourth, which writes
the float32 output, is not reported. Kiln's time per GEMM is the GPU time of
its cuBLASLt kernels in a run (PyTorch's profiler, the kernels of each run
in launch order; the packing that converts the float32 model input to fp16
is left out). PyTorch's is torch.addmm on fp16 tensors (cuBLAS), its
kernels' GPU time measured the same way: both without launch gaps.
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

TOKENS = 4096  # BERT-base at batch 32, sequence 128
# The chain's layers (K, N); the first three are reported, as (what, K, N).
CHAIN = [(768, 768), (768, 3072), (3072, 768), (768, 768)]
SHAPES = [("Q/K/V and output projections", 768, 768), ("FFN up", 768, 3072), ("FFN down", 3072, 768)]


def chain_model(path, m):
    rng = np.random.default_rng(0)
    nodes, inits, last = [], [], "x"
    for i, (k, n) in enumerate(CHAIN):
        # Scaled so the activations stay near 1 through the chain.
        w = rng.uniform(-1, 1, (k, n)).astype(np.float32) / np.sqrt(k)
        inits += [oh.make_tensor(f"w{i}", onnx.TensorProto.FLOAT, [k, n], w.ravel()),
                  oh.make_tensor(f"b{i}", onnx.TensorProto.FLOAT, [n], rng.uniform(-0.5, 0.5, n).astype(np.float32))]
        out = "y" if i + 1 == len(CHAIN) else f"h{i}"
        nodes += [oh.make_node("MatMul", [last, f"w{i}"], [f"mm{i}"]), oh.make_node("Add", [f"mm{i}", f"b{i}"], [out])]
        last = out
    graph = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [m, CHAIN[0][0]])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [m, CHAIN[-1][1]])], inits)
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), path)


def kiln_gemms_us(args, lib):
    """GPU microseconds of each GEMM of the chain, in chain order."""
    folder = os.path.join(args.out, "linear_chain")
    os.makedirs(folder, exist_ok=True)
    onnx_path, art = os.path.join(folder, "model.onnx"), os.path.join(folder, "kiln_fp16.so")
    chain_model(onnx_path, TOKENS)
    gpu_bench.compile_kiln(args.kiln, onnx_path, art, "fp16")
    model = gpu_bench.KilnModel(lib, art, None)
    x = torch.rand(TOKENS, CHAIN[0][0], device="cuda") - 0.5
    out = torch.empty(model.output_shape(), dtype=torch.float32, device="cuda")
    for _ in range(10):
        model.run_device(x, out)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.runs):
            model.run_device(x, out)
        torch.cuda.synchronize()
    kernels = sorted((e for e in gemm_events(prof)), key=lambda e: e.time_range.start)
    if len(kernels) != args.runs * len(CHAIN):
        sys.exit(f"gemm_rate.py: expected {len(CHAIN)} GEMM kernels a run, found {len(kernels)} in {args.runs} runs "
                 f"({sorted(set(e.name for e in kernels))})")
    return [(sum(event_us(e) for e in kernels[i::len(CHAIN)]) / args.runs, kernels[i].name) for i in range(len(CHAIN))]


def gemm_events(prof):
    """The profiled GPU kernels that are not Kiln's generated ones (the
    input's packing, `k<N>_...`) nor copies."""
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA or re.match(r"k\d+_", e.name):
            continue
        if "Memset" in e.name or "Memcpy" in e.name:
            continue
        yield e


def event_us(e):
    return e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total


def gpu_us(prof):
    return sum(event_us(e) for e in gemm_events(prof))


def kernel_names(prof):
    return ", ".join(sorted(set(short_name(e.name) for e in gemm_events(prof))))


def short_name(name):
    """A cuBLAS kernel's name without its template arguments."""
    return name.split("<")[0].split("(")[0][:60]


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
    return gpu_us(prof) / args.runs, kernel_names(prof)


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
             "edited by hand. GPU time per GEMM from PyTorch's profiler for both (no launch gaps). Kiln's GEMMs are "
             "the first three of a chain of four Linear layers (768 -> 768 -> 3072 -> 768 -> 768) compiled with "
             "--cuda-precision fp16: each reads a 16-bit A and writes a 16-bit D with its bias, as BERT-base's "
             "projections and FFN-up GEMM do (its output projection and FFN-down GEMM also accumulate the residual "
             "as C); PyTorch's are torch.addmm on fp16 tensors.", "",
             "| GEMM | M x K x N | Kiln us | Kiln TFLOP/s | PyTorch us | PyTorch TFLOP/s | Kiln / PyTorch rate |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    kernels = ["", "Kernels (Kiln; PyTorch):", ""]
    kiln_us = kiln_gemms_us(args, lib)
    for (what, k, n), (kiln, kiln_kernel) in zip(SHAPES, kiln_us):
        m = TOKENS
        flop = 2.0 * m * k * n
        ref, ref_kernels = torch_gemm_us(args, m, k, n)
        kernels.append(f"- {what}: `{short_name(kiln_kernel)}`; `{ref_kernels}`")
        lines.append(f"| {what} | {m}x{k}x{n} | {kiln:.1f} | {flop / kiln / 1e6:.0f} | {ref:.1f} | "
                     f"{flop / ref / 1e6:.0f} | {ref / kiln:.2f} |")
    text = "\n".join(lines + kernels)
    with open(os.path.join(args.out, "gemm_rate.md"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
