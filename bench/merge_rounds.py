"""Merges the rounds of one engine's benchmark that bench/run.sh ran turn
about with another engine's, into the files one run would have left.

    /usr/bin/python3 bench/merge_rounds.py DIR ENGINE ROUNDS

Reads DIR/ENGINE.round<r>.{json,rc,err,seconds} for r = 1..ROUNDS and
writes DIR/ENGINE.{json,rc,err,seconds}. A failed round (or one that printed
no result) makes the engine's step fail with that round's exit status and
error. Otherwise the JSON is the first round's, with median_ms and p90_ms
the medians of the rounds' own, min_ms the least, iters the total, the
figures derived from them recomputed, and round_median_ms the rounds'
medians in order.
"""
import json
import os
import statistics
import sys

from benchlib import read, step_failure, step_json


def main():
    folder, engine, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    names = [f"{engine}.round{r}" for r in range(1, rounds + 1)]
    results, seconds = [], 0.0
    for name in names:
        seconds += float(read(os.path.join(folder, name + ".seconds")) or 0)
        result = None if step_failure(folder, name) else step_json(folder, name)
        if result is None:
            rc = read(os.path.join(folder, name + ".rc"))
            err = read(os.path.join(folder, name + ".err")) or ""
            write(folder, engine, "1" if rc in (None, "0") else rc, err or f"{name}: no result printed", "", seconds)
            return
        results.append(result)
    merged = dict(results[0])
    merged["median_ms"] = statistics.median(r["median_ms"] for r in results)
    merged["p90_ms"] = statistics.median(r["p90_ms"] for r in results)
    merged["min_ms"] = min(r["min_ms"] for r in results)
    merged["iters"] = sum(r["iters"] for r in results)
    merged["round_median_ms"] = [r["median_ms"] for r in results]
    if all("max_ms" in r for r in results):
        merged["max_ms"] = max(r["max_ms"] for r in results)
    if all("mean_ms" in r for r in results):
        merged["mean_ms"] = sum(r["mean_ms"] * r["iters"] for r in results) / merged["iters"]
    if "throughput_per_s" in merged and "mean_ms" in merged:
        merged["throughput_per_s"] = 1000.0 / merged["mean_ms"]
    if merged.get("flops"):
        merged["gflops_per_s"] = merged["flops"] / (merged["median_ms"] * 1e6)
        if merged.get("peak_gflops"):
            merged["percent_of_peak"] = 100 * merged["gflops_per_s"] / merged["peak_gflops"]
    write(folder, engine, "0", "", json.dumps(merged), seconds)


def write(folder, engine, rc, err, out, seconds):
    for suffix, text in (("rc", rc), ("err", err), ("json", out), ("seconds", f"{seconds:.2f}")):
        with open(os.path.join(folder, f"{engine}.{suffix}"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
