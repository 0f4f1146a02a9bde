"""Times a benchmark model in PyTorch on the CPU, as eager code or as frozen
TorchScript, with the same warm-up and iteration rule as `kiln bench` and
ort_bench.js.

    /usr/bin/python3 bench/torch_bench.py --model NAME --input input.npy --mode eager|jit
        [--threads N] [--iters N] [--warmup N] [--max-time S] [--output FILE.npy]

Prints one JSON object (median_ms, p90_ms, min_ms, iters, threads, ...).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def time_runs(run, iters, warmup, max_time):
    """Warm-up: `warmup` runs or max_time/5 seconds; then `iters` timed runs or max_time seconds (at least one)."""
    start = time.perf_counter()
    for _ in range(warmup):
        run()
        if max_time and time.perf_counter() - start >= max_time / 5:
            break
    times = []
    start = time.perf_counter()
    for _ in range(iters):
        t0 = time.perf_counter()
        run()
        t1 = time.perf_counter()
        times.append((t1 - t0) * 1000)
        if max_time and t1 - start >= max_time:
            break
    return times


def summarize(times):
    s = sorted(times)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return {"iters": n, "median_ms": median, "p90_ms": s[math.ceil(0.9 * n) - 1], "min_ms": s[0],
            "mean_ms": sum(s) / n, "throughput_per_s": 1000 * n / sum(s)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, choices=list(models.MODELS))
    p.add_argument("--input", required=True)
    p.add_argument("--mode", choices=["eager", "jit"], default="eager")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--max-time", type=float, default=0)
    p.add_argument("--output")
    a = p.parse_args()
    if a.threads < 1 or a.iters < 1 or a.warmup < 0:
        sys.exit("torch_bench.py: --threads and --iters must be positive, --warmup non-negative")
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    x = torch.from_numpy(np.load(a.input))
    model = models.build(a.model)
    with torch.no_grad():
        if a.mode == "jit":
            model = torch.jit.freeze(torch.jit.trace(model, (x,)))
        out = model(x)
        times = time_runs(lambda: model(x), a.iters, a.warmup, a.max_time)
    if a.output:
        np.save(a.output, out.numpy())
    result = {"engine": f"pytorch-{a.mode}", "version": torch.__version__, "threads": a.threads, **summarize(times)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
