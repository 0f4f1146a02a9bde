#!/usr/bin/env bash
# Pruned against dense Kiln, in one run on this machine: ResNet-50 (random
# weights, bench/export_models.py) compiled dense and with --prune
# channels:0.5 and magnitude:0.8:block, timed with `kiln bench` in interleaved
# rounds (dense, pruned, dense, ...) so load hits every variant alike; and the
# trained digits CNN's accuracy rows (held-out validation set). Writes
# bench/prune/RESULTS.md. See docs/pruning.md.
#
#   bench/prune/run.sh [--threads N] [--rounds N] [--iters N] [--out DIR] [--results FILE]
#
# Needs /usr/bin/python3 with torch and torchvision to export ResNet-50
# (apt-get install python3-torch python3-torchvision) unless DIR already
# holds it; the kiln CLI from build/ (KILN=path for another).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$here")
tool=bench/prune/run.sh
log_tag=prune
# shellcheck source=../lib.sh
source "$bench/lib.sh"
command_line="${KILN:+KILN=$KILN }bench/prune/run.sh $*"

threads=2
rounds=5
iters=10
out=$bench/out/models
results=$here/RESULTS.md
usage() { echo "usage: bench/prune/run.sh [--threads N] [--rounds N] [--iters N] [--out DIR] [--results FILE]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --threads) threads=$2 ;;
    --rounds) rounds=$2 ;;
    --iters) iters=$2 ;;
    --out) out=$2 ;;
    --results) results=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for n in "$threads" "$rounds" "$iters"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die 2 "'$n' is not a positive integer"; done
need_kiln

# --- ResNet-50: export (shared with bench/run.sh), compile the variants ---------
model=$out/resnet50/model.onnx
if [ ! -f "$model" ]; then
  log "exporting resnet50 ..."
  $py "$bench/export_models.py" "$out" resnet50 || die 1 "exporting resnet50 failed"
fi
work=$out/resnet50/prune
mkdir -p "$work"
variants=(dense channels50 block80)
declare -A flags=([dense]="" [channels50]="--prune channels:0.5" [block80]="--prune magnitude:0.8:block")
for v in "${variants[@]}"; do
  log "compiling resnet50 $v ..."
  start=$(date +%s%N)
  # shellcheck disable=SC2086
  "$kiln" compile "$model" -o "$work/$v.so" ${flags[$v]} --report "$work/$v.json" 2>"$work/$v.compile.err" ||
    { echo "bench/prune/run.sh: compiling $v failed:" >&2; tail -3 "$work/$v.compile.err" >&2; exit 1; }
  echo $((($(date +%s%N) - start) / 1000000)) >"$work/$v.compile_ms"
done

# --- interleaved timing ---------------------------------------------------------
: >"$work/bench.jsonl"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    log "round $r/$rounds: $v"
    "$kiln" bench "$work/$v.so" --input "$out/resnet50/input.npy" --threads "$threads" --iters "$iters" --warmup 3 --json |
      sed "s/^{/{\"variant\": \"$v\", \"round\": $r, /" >>"$work/bench.jsonl" ||
      die 1 "kiln bench $v failed"
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- digits CNN accuracy (trained, held-out validation) -------------------------
data=$root/tests/data/quant
for p in channels:0.125 channels:0.5 magnitude:0.3 magnitude:0.5 magnitude:0.5:block; do
  tag=${p//:/_}
  "$kiln" compile "$data/digits_cnn.onnx" -o "$work/digits_$tag.so" --prune "$p" --validation "$data/validation" \
    --report "$work/digits_$tag.json" 2>"$work/digits_$tag.err" ||
    { echo "bench/prune/run.sh: digits_cnn --prune $p failed:" >&2; tail -3 "$work/digits_$tag.err" >&2; exit 1; }
done
"$kiln" compile "$data/digits_cnn.onnx" -o "$work/digits_budget.so" --prune magnitude:0.5 --accuracy-budget 20dB \
  --calibration "$data/calibration" --validation "$data/validation" --report "$work/digits_budget.json" \
  2>"$work/digits_budget.err" || { echo "bench/prune/run.sh: digits_cnn --accuracy-budget failed" >&2; exit 1; }

$py - "$work" "$results" "$command_line" "$load_before" "$load_after" "$threads" "$rounds" "$iters" <<'PY'
import json, os, statistics, subprocess, sys
work, results, command, load_before, load_after, threads, rounds, iters = sys.argv[1:]
rows = [json.loads(l) for l in open(os.path.join(work, "bench.jsonl"))]
med = {}
for v in ("dense", "channels50", "block80"):
    med[v] = statistics.median(r["median_ms"] for r in rows if r["variant"] == v)
def report(name):
    return json.load(open(os.path.join(work, name)))
def flops(v):
    return report(f"{v}.json")["flops"]
lines = ["# Pruning: speed and accuracy", "",
         "Written by `bench/prune/run.sh`; do not edit by hand. See docs/pruning.md.", "",
         f"Command: `{command}`", "",
         f"Load average (1/5/15 min) before timing: {load_before}; after: {load_after} "
         "(a shared 2-core machine: same-run numbers only).", "",
         "## ResNet-50 (torchvision, random weights, batch 1)", "",
         f"`kiln bench --threads {threads} --iters {iters}` per round, {rounds} rounds, variants interleaved "
         "(dense, channels, block, dense, ...); the median of the per-round medians.", "",
         "| variant | --prune | model FLOPs | median ms | speedup vs dense |", "| --- | --- | --- | --- | --- |"]
names = {"dense": "", "channels50": "channels:0.5", "block80": "magnitude:0.8:block"}
for v in ("dense", "channels50", "block80"):
    lines.append(f"| {v} | {names[v] or '(none)'} | {flops(v) / 1e9:.2f} G | {med[v]:.2f} | {med['dense'] / med[v]:.2f}x |")
lines += ["", "Per-round medians (ms): " + "; ".join(
    f"{v}: " + ", ".join(f"{r['median_ms']:.1f}" for r in rows if r["variant"] == v) for v in names), "",
    "## digits CNN (trained; 200 held-out validation images)", "",
    "The pruned artifact against the dense one (`kiln compile --prune P --validation tests/data/quant/validation`).", "",
    "| --prune | weights removed | FLOPs removed | SQNR (dB) | max abs error | top-1 agreement |",
    "| --- | --- | --- | --- | --- | --- |"]
for p in ("channels:0.125", "channels:0.5", "magnitude:0.3", "magnitude:0.5", "magnitude:0.5:block", "budget"):
    name = "digits_budget.json" if p == "budget" else f"digits_{p.replace(':', '_')}.json"
    r = report(name)["pruning"]
    out = r["accuracy"]["outputs"][0]
    removed = 1 - r["nonzero_after"] / r["params_before"]
    fl = 1 - r["flops_after"] / r["flops_before"]
    sq = "inf" if out["sqnr_db"] is None else f"{out['sqnr_db']:.1f}"
    label = "magnitude:0.5 --accuracy-budget 20dB" if p == "budget" else p
    lines.append(f"| {label} | {100 * removed:.1f}% | {100 * fl:.1f}% | {sq} | {out['max_abs_error']:.4f} | "
                 f"{100 * out['top1_agreement']:.1f}% |")
b = report("digits_budget.json")["pruning"]["accuracy_budget"]
lines += ["", f"The budget's choice ({b['trial_compiles']} trial compiles, {b['ms'] / 1000:.1f} s): " +
          ", ".join(f"`{l['name']}` {l['ratio']:.3g}" for l in b["layers"]) + ".", ""]
open(results, "w").write("\n".join(lines))
print("\n".join(lines))
PY
