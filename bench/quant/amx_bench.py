"""Kiln's int8 on AMX tiles against its VNNI kernels, Kiln fp32 and bf16, and
ONNX Runtime (fp32 and on Kiln's QDQ export), side by side on a CPU with
AMX (the device machine; this repository's own machine has none).

    /usr/bin/python3 bench/quant/amx_bench.py --kiln KILN --out DIR [--work DIR]
        [--models resnet50,bert_base] [--threads 2] [--iters 30] [--warmup 5]
        [--rounds 1]

Every process is pinned to the first --threads cores the machine offers, so
the peers get the same cores. ONNX Runtime is the python package's CPU
execution provider with --threads intra-op threads. Models come from
bench/models.py (random weights) and calibration inputs from
bench/quant/inputs.py, as bench/quant/run.sh makes them, into --work
(default /tmp/kiln-amx-bench) with the artifacts. Writes --out's
results.md and prints it.

With --rounds N every engine is timed once per round, in turn, after all
are compiled: a shared machine's slow spell then hits every column of a
round alike. Each cell is the median over rounds of the per-round median,
and each ratio the median over rounds of that round's ONNX Runtime fp32 /
Kiln ratio.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
bench = os.path.dirname(here)
sys.path.insert(0, bench)
import export_models  # noqa: E402
import models  # noqa: E402


COLUMNS = ["ort fp32", "ort QDQ", "kiln fp32", "kiln int8 VNNI", "kiln int8 AMX", "kiln bf16 AVX512", "kiln bf16 AMX"]


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], flush=True)
        return None
    return done.stdout


def kiln_time(args, artifact, inputs):
    out = run([args.kiln, "bench", artifact, "--input", inputs, "--threads", str(args.threads), "--iters",
               str(args.iters), "--warmup", str(args.warmup), "--json"])
    return json.loads(out)["median_ms"] if out else None


def ort_time(args, model, inputs):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.load(inputs)}
    for _ in range(args.warmup):
        session.run(None, feed)
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/kiln-amx-bench")
    p.add_argument("--models", default="resnet50,bert_base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--variants", default=",".join(COLUMNS[1:]),
                   help="which of " + ", ".join(COLUMNS[1:]) + " to run (ONNX Runtime fp32 always runs)")
    args = p.parse_args()
    wanted = set(args.variants.split(","))
    cores = sorted(os.sched_getaffinity(0))[: args.threads]
    os.sched_setaffinity(0, cores)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    rows = []
    for name in args.models.split(","):
        export_models.export(name, args.work)
        folder = os.path.join(args.work, name)
        model = os.path.join(folder, "model.onnx")
        inputs = os.path.join(folder, "input.npy")
        calibration = os.path.join(folder, "calibration")
        if not os.path.isdir(calibration):
            run([sys.executable, os.path.join(here, "inputs.py"), name, folder])
        quant = ["--quantize", "int8", "--calibration", calibration]
        variants = {
            "kiln fp32": [],
            "kiln int8 VNNI": quant + ["--features=-amx-int8"],
            "kiln int8 AMX": quant,
            "kiln bf16 AVX512": ["--precision", "bf16", "--features=-amx-bf16"],
            "kiln bf16 AMX": ["--precision", "bf16"],
        }
        # What each column times: ("ort", model) or ("kiln", artifact); None where its compile failed.
        engines = {"ort fp32": ("ort", model)}
        qdq = os.path.join(folder, "qdq.onnx")
        if "ort QDQ" in wanted:
            ok = run([args.kiln, "compile", "-O0", model, "-o", qdq, "--emit", "onnx"] + quant) is not None
            engines["ort QDQ"] = ("ort", qdq) if ok else None
        for variant, flags in variants.items():
            if variant not in wanted:
                continue
            artifact = os.path.join(folder, variant.replace(" ", "_") + ".so")
            ok = run([args.kiln, "compile", "-O2", model, "-o", artifact] + flags) is not None
            engines[variant] = ("kiln", artifact) if ok else None
        rounds = {c: [] for c in engines}
        rows.append((name, rounds))
        for _ in range(args.rounds):
            for c, engine in engines.items():
                if engine is None:
                    continue
                kind, path = engine
                t = ort_time(args, path, inputs) if kind == "ort" else kiln_time(args, path, inputs)
                if t is not None:
                    rounds[c].append(t)
            report(args, cpu, cores, rows)  # after each round, so a cut-short run keeps what it measured


def report(args, cpu, cores, rows):
    columns = [c for c in COLUMNS if any(c in times for _, times in rows)]
    lines = [f"CPU: {cpu}; {args.threads} threads pinned to cores {cores}; median of {args.iters} runs, ms"
             + (f"; median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""),
             "(ratio: ONNX Runtime fp32 / Kiln" + (", the median of the per-round ratios)" if args.rounds > 1 else ")"),
             "", "| model | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, rounds in rows:
        base = rounds.get("ort fp32") or []
        cells = []
        for c in columns:
            ts = rounds.get(c)
            if c not in rounds:
                cells.append("not run")
            elif not ts:
                cells.append("failed")
            elif c.startswith("kiln") and base:
                ratios = [b / t for b, t in zip(base, ts)]
                cells.append(f"{statistics.median(ts):.2f} ({statistics.median(ratios):.2f}x)")
            else:
                cells.append(f"{statistics.median(ts):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text, flush=True)


if __name__ == "__main__":
    main()
