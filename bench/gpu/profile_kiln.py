"""Where a Kiln CUDA artifact's time goes on the GPU: runs it (CUDA graph
replay, device-resident input and output) under PyTorch's profiler, which
records every kernel the process launches (CUPTI), and prints the GPU time
per kernel kind, the launch count and how much of the run's wall time the
kernels fill. Runs on the GPU machine:

    python3 bench/gpu/profile_kiln.py --kiln KILN --runtime LIBKILN_RT --out DIR \
        [--models bert_base] [--precision fp16] [--runs 20] [--batch 1] \
        [--variant NAME=COMPILE_ARGS ...]

Each --variant compiles the model again with extra `kiln compile` arguments
(for example `--variant nchw="--disable-pass=channels-last"`) and profiles
it after the default build, so two schedules are compared on one machine.

A kernel kind is the generated function's name without its kernel number
(`k33_Mul_s0_epilogue` -> `Mul_s0_epilogue`), or cuBLASLt's kernel name.
Writes DIR/profile_MODEL[_bBATCH][_VARIANT].txt.
"""
import argparse
import collections
import ctypes
import os
import re
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402


def kind(name):
    m = re.match(r"k\d+_(.*)", name)
    if m:
        return m.group(1)
    return "cuBLASLt " + name[:60]


def profile_model(name, args, lib, variant="", extra=()):
    folder = os.path.join(args.out, f"{name}_b{args.batch}")
    os.makedirs(folder, exist_ok=True)
    onnx_path, x = gpu_bench.export(name, args.batch, folder)
    suffix = (f"_b{args.batch}" if args.batch != 1 else "") + (f"_{variant}" if variant else "")
    art = os.path.join(folder, f"kiln_{args.precision}{suffix}.so")
    gpu_bench.compile_kiln(args.kiln, onnx_path, art, args.precision, extra)
    k = gpu_bench.KilnModel(lib, art, None)
    xt = torch.from_numpy(x).cuda()
    out = torch.empty(k.output_shape(), dtype=torch.float32, device="cuda")
    for _ in range(5):
        k.run_device(xt, out)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.runs):
        k.run_device(xt, out)
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - start) * 1e3 / args.runs
    acts = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(args.runs):
            k.run_device(xt, out)
        torch.cuda.synchronize()
    per_kind = collections.defaultdict(lambda: [0, 0.0])
    total_us, launches = 0.0, 0
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
        per_kind[kind(e.name)][0] += 1
        per_kind[kind(e.name)][1] += us
        total_us += us
        launches += 1
    title = f"{name} batch {args.batch} {args.precision}" + (f" ({variant}: {' '.join(extra)})" if variant else "")
    lines = [f"# {title}: {wall_ms:.3f} ms per run (wall, device I/O, {args.runs} runs)",
             f"GPU activities per run: {launches / args.runs:.0f}, busy {total_us / args.runs / 1e3:.3f} ms "
             f"({100 * total_us / args.runs / 1e3 / wall_ms:.0f}% of the wall time)", "",
             "| kind | per run | us per run | us each |", "| --- | --- | --- | --- |"]
    for kname, (count, us) in sorted(per_kind.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {kname} | {count / args.runs:.0f} | {us / args.runs:.1f} | {us / count:.2f} |")
    text = "\n".join(lines)
    with open(os.path.join(args.out, f"profile_{name}{suffix}.txt"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--runtime", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="bert_base")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=ARGS: also profile a build with these extra kiln compile arguments")
    args = p.parse_args()
    lib = gpu_bench.load_runtime(args.runtime)
    for name in args.models.split(","):
        profile_model(name, args, lib)
        for v in args.variant:
            vname, _, vargs = v.partition("=")
            profile_model(name, args, lib, vname, vargs.split())


if __name__ == "__main__":
    main()
