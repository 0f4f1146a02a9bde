"""Writes bench/RESULTS.md (to stdout) from what bench/run.sh left in its out folder.

    /usr/bin/python3 bench/report.py --out DIR --models a,b --kiln KILN --threads N --command "bench/run.sh ..."
"""
import argparse
import os

import numpy as np
import onnx
from onnx import shape_inference

from benchlib import machine, physical_cores, read, step_failure, step_json

ENGINES = [("kiln", "Kiln"), ("ort", "ONNX Runtime"), ("torch_jit", "PyTorch TorchScript"), ("torch_eager", "PyTorch eager")]


def engine_result(folder, name):
    """(result dict, None) on success, else (None, why)."""
    why = step_failure(folder, name)
    if why:
        return None, why
    if name == "compile":
        return {}, None
    result = step_json(folder, name)
    return (result, None) if result is not None else (None, "no result printed")


def model_flops(path):
    """2 x multiply-adds of Conv, ConvTranspose, Gemm and MatMul, from ONNX shape inference."""
    model = shape_inference.infer_shapes(onnx.load(path))
    shapes = {}
    for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        shapes[v.name] = dims
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    total = 0
    for node in model.graph.node:
        ins = [shapes.get(i) for i in node.input]
        outs = [shapes.get(o) for o in node.output]
        if not outs or not outs[0] or any(d == 0 for d in outs[0]):
            continue
        out = outs[0]
        if node.op_type == "Conv" and ins[1]:
            total += 2 * int(np.prod(out)) * int(np.prod(ins[1][1:]))
        elif node.op_type == "ConvTranspose" and ins[0] and ins[1]:
            total += 2 * int(np.prod(ins[0])) * int(np.prod(ins[1][1:]))
        elif node.op_type in ("MatMul", "Gemm") and ins[0]:
            attrs = {a.name: a.i for a in node.attribute}
            k = ins[0][0] if node.op_type == "Gemm" and attrs.get("transA") else ins[0][-1]
            total += 2 * int(np.prod(out)) * k
    return total


def peak(threads):
    """The rule of tools/kiln/measure.cpp: cores x clock x FLOPs per cycle per core."""
    mhz = 0.0
    freq = read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if freq:
        mhz = float(freq) / 1000
    flags = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            mhz = max(mhz, float(line.split(":")[1]))
        elif line.startswith("flags"):
            flags = line.split(":")[1].split()
    if "avx512f" in flags:
        fpc, isa = 64, "AVX-512: 2 FMA x 16 lanes x 2"
    elif "avx2" in flags and "fma" in flags:
        fpc, isa = 32, "AVX2: 2 FMA x 8 lanes x 2"
    else:
        fpc, isa = 8, "SSE"
    cores = min(threads, physical_cores())
    return cores * mhz / 1000 * fpc, f"{cores} cores x {mhz / 1000:.3g} GHz x {fpc} FLOP/cycle ({isa})"


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def agreement(folder, a, b):
    pa, pb = os.path.join(folder, a), os.path.join(folder, b)
    if not (os.path.exists(pa) and os.path.exists(pb)):
        return None, "—"
    x, y = np.load(pa).astype(np.float64), np.load(pb).astype(np.float64)
    if x.shape != y.shape:
        return None, f"shapes differ {x.shape} vs {y.shape}"
    diff = float(np.max(np.abs(x - y))) if x.size else 0.0
    scale = float(np.max(np.abs(y))) if y.size else 0.0
    return diff, f"{diff:.2e} (of max {scale:.3g})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--kiln", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--command", required=True)
    a = p.parse_args()
    peak_gflops, derivation = peak(a.threads)
    derivation += ", from /proc/cpuinfo (the clock a hypervisor reports may be the nominal one, not the AVX-512 clock)"
    names = a.models.split(",")
    # Prefer the peak `kiln bench` measured (FMA loops on the same threads):
    # it is what this machine delivers; the nominal figure is the fallback.
    for m in names:
        r, _ = engine_result(os.path.join(a.out, "models", m), "kiln")
        if r and r.get("peak_gflops"):
            peak_gflops, derivation = r["peak_gflops"], "kiln bench: " + r["peak_derivation"]
            break
    # bench/run.sh's turns (merge_rounds.py keeps each turn's median).
    rounds = max((len((engine_result(os.path.join(a.out, "models", m), "ort")[0] or {}).get("round_median_ms", []))
                  for m in names), default=0)
    timing_note = (f"Kiln and ONNX Runtime take {rounds} turns each, interleaved, and report the median of their "
                   "turns' medians, each over the turn's timed runs after warm-up; PyTorch runs once, its median "
                   if rounds > 1 else "median ")
    rows, efficiency, notes, versions = [], [], [], {}
    for m in names:
        folder = os.path.join(a.out, "models", m)
        res = {}
        for key, label in ENGINES:
            r, why = engine_result(folder, key)
            res[key] = r
            if r and "version" in r:
                versions[label] = r["version"]
            if why and not (key == "kiln" and engine_result(folder, "compile")[1]):
                notes.append(f"- {m}, {label}: {why}")
        compile_ok, compile_why = engine_result(folder, "compile")
        if compile_why:
            notes.append(f"- {m}, Kiln compile: {compile_why}")
        compile_s = read(os.path.join(folder, "compile.seconds"))
        med = {k: (r["median_ms"] if r else None) for k, r in res.items()}

        def cell(key):
            r = res[key]
            if r:
                return fmt(r["median_ms"])
            _, why = engine_result(folder, key)
            if key == "kiln" and compile_why:
                why = "compile " + ("timeout" if compile_why.startswith("timeout") else "failed")
            return "timeout" if why.startswith("timeout") else ("—" if why == "not run" else why.split(":")[0][:24])

        def ratio(x, y):
            return f"{med[x] / med[y]:.2f}" if med[x] and med[y] else "—"

        mins = {k: (r["min_ms"] if r else None) for k, r in res.items()}
        min_ratio = f"{mins['kiln'] / mins['ort']:.2f}" if mins["kiln"] and mins["ort"] else "—"
        rows.append(f"| {m} | {cell('kiln')} | {cell('ort')} | {cell('torch_jit')} | {cell('torch_eager')} | "
                    f"{ratio('kiln', 'ort')} | {min_ratio} | {ratio('kiln', 'torch_jit')} | {ratio('kiln', 'torch_eager')} | "
                    f"{compile_s if not compile_why or compile_why.startswith('timeout') else '—'} |")
        path = os.path.join(folder, "model.onnx")
        flops = model_flops(path) if os.path.exists(path) else 0

        def pct(key):
            return f"{100 * flops / (med[key] * 1e6) / peak_gflops:.1f}%" if med[key] and flops and peak_gflops else "—"

        _, kiln_vs_ort = agreement(folder, "kiln_output.npy", "ort_output.npy")
        _, torch_vs_ort = agreement(folder, "torch_eager_output.npy", "ort_output.npy")
        efficiency.append(f"| {m} | {flops / 1e9:.2f} | {pct('kiln')} | {pct('ort')} | {kiln_vs_ort} | {torch_vs_ort} |")

    threads_note = f"{a.threads} thread{'s' if a.threads > 1 else ''}"
    out = [
        "# Benchmark results",
        "",
        "Regenerated by `bench/run.sh` (see bench/README.md); never edited by hand.",
        "",
        f"- Command: `{a.command}`",
        f"- Machine: {machine(a.kiln)}",
        "- Engines: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- fp32 peak: {peak_gflops:.0f} GFLOP/s = {derivation}",
        f"- Batch 1, fp32, {threads_note} for every engine; {timing_note}of the timed runs after warm-up "
        "(same iteration and time budget for every engine); models exported by `torch.onnx.export` at opset 17 "
        "with random weights; Kiln compiled with `-O2`.",
        "",
        "## Latency (median ms; ratio < 1 means Kiln is faster)",
        "",
        "Kiln / ORT (min) compares the fastest runs, which a busy shared machine disturbs least.",
        "",
        "| model | Kiln | ONNX Runtime | PyTorch TorchScript | PyTorch eager | Kiln / ORT | Kiln / ORT (min) "
        "| Kiln / TorchScript | Kiln / eager | Kiln compile s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "## Fraction of the fp32 peak, and agreement",
        "",
        "GFLOP: 2 x the multiply-adds of Conv, Gemm and MatMul (ONNX shape inference). Agreement: max |difference| "
        "of the first output against ONNX Runtime's on the same input.",
        "",
        "| model | GFLOP | Kiln % of peak | ORT % of peak | Kiln vs ORT | PyTorch eager vs ORT |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *efficiency,
        "",
    ]
    gemm = read(os.path.join(a.out, "gemm", "table.txt"))
    if gemm:
        out += ["## GEMM sweep", "",
                "`bench/gemm.sh`: one MatMul (activation [M,K] x constant weight [K,N]) per shape, Kiln at -O2, "
                f"{a.threads} threads; GFLOP/s = 2*M*K*N per run over the median.", "",
                "```", gemm.rstrip(), "```", ""]
    if notes:
        out += ["## Failures and timeouts", "", *notes, ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
