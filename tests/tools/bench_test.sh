#!/usr/bin/env bash
# `kiln bench` and `kiln profile` as a CI pipeline drives them: the JSON they
# print parses and holds consistent, positive measurements; profile lists
# every kernel of the artifact and its times add up to the run; bad
# arguments exit 2 with a message naming the option or input.
#   bench_test.sh KILN_BINARY
set -uo pipefail
kiln=$1
examples=$(cd "$(dirname "$0")/../../examples" && pwd)
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"


# check_json NAME PYTHON_CONDITION: evaluates the condition with `r` = the JSON in $work/out.
check_json() {
  if $py -c "import json, sys; r = json.load(open('$work/out')); sys.exit(0 if ($2) else 1)" 2>"$work/pyerr"; then
    pass "$1"
  else
    cp "$work/out" "$work/shown"; cat "$work/pyerr" >>"$work/shown"; fail "$1" "$work/shown"
  fi
}

model=$examples/tiny_cnn/tiny_cnn.onnx
expect "compile tiny_cnn" 0 "" -- "$kiln" compile "$model" -o "$work/m.so"

# --- bench ---------------------------------------------------------------------
expect "bench --json" 0 "" -- "$kiln" bench "$work/m.so" --iters 7 --warmup 2 --threads 1 --json
check_json "bench JSON has positive median, p90, min, throughput, peak RSS" \
  "all(isinstance(r[k], (int, float)) and r[k] > 0 for k in ('median_ms', 'p90_ms', 'min_ms', 'throughput_per_s', 'peak_rss_bytes'))"
check_json "bench JSON: min <= median <= p90 <= max" "r['min_ms'] <= r['median_ms'] <= r['p90_ms'] <= r['max_ms']"
check_json "bench JSON reports the iterations and threads asked for" "r['iters'] == 7 and r['threads'] == 1 and r['warmup'] == 2"
check_json "bench JSON: throughput matches the mean latency" "abs(r['throughput_per_s'] * r['mean_ms'] / 1000 - 1) < 0.01"
check_json "bench JSON: peak RSS covers the RSS before loading" "r['peak_rss_bytes'] >= r['rss_before_load_bytes'] > 0"
check_json "bench JSON: FLOPs and peak are positive" "r['flops'] > 0 and r['peak_gflops'] > 0 and 'FLOP/cycle' in r['peak_derivation']"

expect "bench with --input and --peak-gflops" 0 "" -- \
  "$kiln" bench "$work/m.so" --input "$examples/tiny_cnn/input.npy" --iters 3 --warmup 0 --peak-gflops 123 --json
check_json "bench --peak-gflops overrides the estimate" "r['peak_gflops'] == 123 and r['iters'] == 3"
expect "bench --max-time stops early" 0 "" -- "$kiln" bench "$work/m.so" --iters 1000000 --warmup 0 --max-time 0.2 --json
check_json "bench --max-time bounds the runs" "1 <= r['iters'] < 1000000"
expect "bench text output" 0 "" -- "$kiln" bench "$work/m.so" --iters 3
grep -qE "latency +median [0-9.]+ ms +p90" "$work/out" && pass "bench text names median and p90" ||
  fail "bench text names median and p90" "$work/out"

expect "bench --iters 0" 2 "--iters" -- "$kiln" bench "$work/m.so" --iters 0
expect "bench --threads -1" 2 "--threads" -- "$kiln" bench "$work/m.so" --threads -1
expect "bench --iters abc" 2 "--iters" -- "$kiln" bench "$work/m.so" --iters abc
expect "bench unknown option" 2 "--frobnicate" -- "$kiln" bench "$work/m.so" --frobnicate
expect "bench without an artifact" 2 "artifact" -- "$kiln" bench
expect "bench missing artifact" 4 "^kiln: error: .*nope.so" -- "$kiln" bench "$work/nope.so"
expect "bench unknown input name" 2 "^kiln: error: --input nope=.*no input named 'nope'" -- \
  "$kiln" bench "$work/m.so" --input nope="$examples/tiny_cnn/input.npy"
expect "bench malformed --shape" 2 "^kiln: error: --shape expects NAME=DIMS" -- "$kiln" bench "$work/m.so" --shape 1x2
printf 'junk' >"$work/bad.npy"
expect "bench unreadable input file" 2 "^kiln: error: .*bad.npy" -- "$kiln" bench "$work/m.so" --input "$work/bad.npy"
$py - "$work/wrong.npy" <<'EOF'
import struct, sys
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(24))
EOF
expect "bench wrong input shape" 2 "^kiln: error: .*input 0 '[^']*': shape \[2x3\], expected" -- \
  "$kiln" bench "$work/m.so" --input "$work/wrong.npy"

# --- profile -------------------------------------------------------------------
expect "inspect for the kernel count" 0 "" -- "$kiln" inspect "$work/m.so"
kernels=$(awk '$1 == "kernel_count" {print $2}' "$work/out")
[ -n "$kernels" ] && [ "$kernels" -gt 0 ] && pass "inspect reports kernel_count ($kernels)" || fail "inspect reports kernel_count" "$work/out"
expect "profile --json" 0 "" -- "$kiln" profile "$work/m.so" --iters 20 --warmup 2 --json
check_json "profile lists every kernel once" \
  "len(r['kernels']) == ${kernels:-0} and sorted(k['index'] for k in r['kernels']) == list(range(${kernels:-0}))"
check_json "profile kernels have names, origins and non-negative times" \
  "all(k['name'] and 'origin' in k and k['ms'] >= 0 and k['flops'] >= 0 for k in r['kernels'])"
check_json "profile is sorted slowest first" "all(a['ms'] >= b['ms'] for a, b in zip(r['kernels'], r['kernels'][1:]))"
check_json "profile kernel times add up to kernel_sum_ms" "abs(sum(k['ms'] for k in r['kernels']) - r['kernel_sum_ms']) <= 1e-3 * r['kernel_sum_ms'] + 1e-6"
# Kernels run inside the run; how much of it they fill is not asserted: in
# a model this small (~15 us of kernels) the run's own work (checking
# inputs, the arena) can take longer, the more so in a sanitized build.
check_json "profile kernel times fit in the run time" "0 < r['kernel_sum_ms'] <= 1.01 * r['run_ms']"
check_json "profile percentages sum to 100" "abs(sum(k['percent'] for k in r['kernels']) - 100) < 0.1"
check_json "profile FLOPs: the sum of the kernels', some kernel computes" "r['flops'] == sum(k['flops'] for k in r['kernels']) > 0"
expect "profile text" 0 "" -- "$kiln" profile "$work/m.so" --iters 3 --top 2
grep -qE "^1 +[A-Za-z_]" "$work/out" && grep -qE "GFLOP/s" "$work/out" && pass "profile text ranks kernels" ||
  fail "profile text ranks kernels" "$work/out"
[ "$kernels" -gt 2 ] && { grep -q "more kernels" "$work/out" && pass "profile --top cuts the list" || fail "profile --top cuts the list" "$work/out"; }
expect "profile --iters 0" 2 "--iters" -- "$kiln" profile "$work/m.so" --iters 0
expect "profile missing artifact" 4 "^kiln: error: .*nope.so" -- "$kiln" profile "$work/nope.so"

# --- a CUDA artifact ---------------------------------------------------------------
# Its rate is not held against the CPU's FMA peak: without --peak-gflops the
# peak and the percentage are null, and the text says why. Only where the
# artifact runs (a GPU machine); elsewhere the skip is printed.
if "$kiln" compile "$model" --target cuda -q -o "$work/gpu.so" 2>"$work/err" &&
  "$kiln" run "$work/gpu.so" --input "$examples/tiny_cnn/input.npy" >/dev/null 2>"$work/err"; then
  expect "bench a CUDA artifact" 0 "" -- "$kiln" bench "$work/gpu.so" --iters 5 --warmup 1 --json
  check_json "CUDA bench: no CPU peak" "r['peak_gflops'] is None and r['percent_of_peak'] is None and 'CUDA' in r['peak_derivation']"
  expect "profile a CUDA artifact" 0 "" -- "$kiln" profile "$work/gpu.so" --iters 3 --warmup 1 --json
  check_json "CUDA profile: no CPU peak" "r['peak_gflops'] is None and all(k['percent_of_peak'] is None for k in r['kernels'])"
  expect "CUDA bench text" 0 "" -- "$kiln" bench "$work/gpu.so" --iters 3
  grep -q "peak: none for a CUDA artifact" "$work/out" && pass "CUDA bench text names the missing peak" ||
    fail "CUDA bench text names the missing peak" "$work/out"
  expect "CUDA bench --peak-gflops" 0 "" -- "$kiln" bench "$work/gpu.so" --iters 3 --peak-gflops 50000 --json
  check_json "CUDA bench --peak-gflops is the peak" "r['peak_gflops'] == 50000 and r['percent_of_peak'] is not None"
else
  echo "SKIP CUDA bench and profile: no GPU runs the CUDA artifact here: $(head -1 "$work/err" | cut -c1-200)"
fi

# --- bench/run.sh's rounds: merge_rounds.py -------------------------------------
# Two rounds of kiln bench become one result: the median of the rounds'
# medians, the least minimum, the iterations summed, the throughput of the
# pooled mean; a failed round fails the merged step with its status.
merge=$(cd "$(dirname "$0")/../../bench" && pwd)/merge_rounds.py
for r in 1 2; do
  "$kiln" bench "$work/m.so" --iters $((3 * r)) --warmup 0 --threads 1 --json >"$work/kiln.round$r.json" 2>"$work/kiln.round$r.err"
  echo $? >"$work/kiln.round$r.rc"
  echo 0.1 >"$work/kiln.round$r.seconds"
done
expect "merge two rounds" 0 "" -- $py "$merge" "$work" kiln 2
cp "$work/kiln.json" "$work/out"
check_json "merged rounds: median of the medians, iterations summed" \
  "abs(r['median_ms'] - sum(r['round_median_ms']) / 2) < 1e-9 and len(r['round_median_ms']) == 2 and r['iters'] == 9"
check_json "merged rounds: throughput of the pooled mean, min <= median" \
  "abs(r['throughput_per_s'] * r['mean_ms'] / 1000 - 1) < 1e-9 and r['min_ms'] <= r['median_ms']"
[ "$(cat "$work/kiln.rc")" = 0 ] && pass "merged rounds exit 0" || fail "merged rounds exit 0"
echo 3 >"$work/kiln.round2.rc"
echo "kiln: error: unsupported" >"$work/kiln.round2.err"
expect "merge with a failed round" 0 "" -- $py "$merge" "$work" kiln 2
[ "$(cat "$work/kiln.rc")" = 3 ] && grep -q "unsupported" "$work/kiln.err" && pass "a failed round fails the merged step" ||
  fail "a failed round fails the merged step" "$work/kiln.err"
finish bench_test
