#!/usr/bin/env bash
# Kiln against ONNX Runtime and PyTorch on the benchmark models, on this
# machine, in one run; writes bench/RESULTS.md. See bench/README.md.
#
#   bench/run.sh [--threads N] [--iters N] [--warmup N] [--max-time S] [--time-limit S]
#                [--rounds N] [--models a,b,...] [--out DIR] [--results FILE]
#
# Installs what it needs and is missing: python3-torch and python3-torchvision
# with apt-get (large, so not in scripts/install-deps.sh), onnxruntime-node
# into bench/node_modules with `npm ci --ignore-scripts`, and the kiln CLI
# (build/bin/kiln; set KILN=path to use another build).
set -uo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
tool=bench/run.sh
log_tag=bench
command_line="${KILN:+KILN=$KILN }bench/run.sh $*"

threads=$(nproc)
iters=50
warmup=10
max_time=20     # seconds of timed runs per engine and model (warm-up gets a fifth more)
time_limit=900  # seconds before one compile or one engine's benchmark is killed
rounds=5        # Kiln and ONNX Runtime take turns this many times per model
models=squeezenet1_1,mobilenet_v2,efficientnet_b0,resnet50,small_encoder,bert_base
out=$bench/out
results=$bench/RESULTS.md
# shellcheck source=lib.sh
source "$bench/lib.sh"
parse_bench_options "$@"

# --- what the peers and Kiln need -------------------------------------------
need_python_packages "torch, torchvision, onnx, numpy" -- python3-torch python3-torchvision python3-onnx python3-numpy
need_onnxruntime
need_kiln

# --- 1. export ----------------------------------------------------------------
mkdir -p "$out/models"
log "exporting ${names[*]} (opset 17, batch 1, random weights) ..."
$py "$bench/export_models.py" "$out/models" "${names[@]}" || { echo "bench/run.sh: exporting the models failed" >&2; exit 1; }

# --- 2. run every engine on every model -----------------------------------------

timing=(--threads "$threads" --iters "$iters" --warmup "$warmup" --max-time "$max_time")
# Kiln and ONNX Runtime alternate, each round a share of the iterations and
# of the time, so a burst of load on this shared machine falls on both.
round_timing=(--threads "$threads" --iters $(((iters + rounds - 1) / rounds)) --warmup "$warmup"
  --max-time "$(awk -v t="$max_time" -v r="$rounds" 'BEGIN { print t / r }')")
for m in "${names[@]}"; do
  dir=$out/models/$m
  rm -f "$dir"/*.json "$dir"/*.err "$dir"/*.rc "$dir"/*.seconds "$dir"/*_output.npy "$dir/kiln.so"
  rm -rf "$dir/kiln_out"
  log "$m"
  compiled=0
  if run_step "$dir" compile "$kiln" compile -O2 "$dir/model.onnx" -o "$dir/kiln.so"; then
    compiled=1
    run_step "$dir" kiln_run "$kiln" run "$dir/kiln.so" --input "$dir/input.npy" --threads "$threads" \
      --output-dir "$dir/kiln_out" && cp "$dir/kiln_out/output_0.npy" "$dir/kiln_output.npy"
  fi
  for ((r = 1; r <= rounds; r++)); do
    [ "$compiled" = 1 ] &&
      run_step "$dir" "kiln.round$r" "$kiln" bench "$dir/kiln.so" --input "$dir/input.npy" "${round_timing[@]}" --json
    run_step "$dir" "ort.round$r" node "$bench/ort_bench.js" --model "$dir/model.onnx" --input "$dir/input.npy" \
      "${round_timing[@]}" --output "$dir/ort_output.npy"
  done
  [ "$compiled" = 1 ] && $py "$bench/merge_rounds.py" "$dir" kiln "$rounds"
  $py "$bench/merge_rounds.py" "$dir" ort "$rounds"
  for mode in jit eager; do
    run_step "$dir" "torch_$mode" $py "$bench/torch_bench.py" --model "$m" --mode "$mode" --input "$dir/input.npy" \
      "${timing[@]}" --output "$dir/torch_${mode}_output.npy"
  done
done

# --- 3. the GEMM sweep (square and BERT's shapes) against the peak -----------------
mkdir -p "$out/gemm"
log "gemm sweep"
KILN=$kiln timeout --kill-after=10 "$time_limit" bash "$bench/gemm.sh" --threads "$threads" --out "$out/gemm" \
  >"$out/gemm/table.txt" 2>"$out/gemm/table.err" || log "  gemm sweep failed: $(tail -n 1 "$out/gemm/table.err")"

# --- 4. the report ----------------------------------------------------------------
$py "$bench/report.py" --out "$out" --models "$models" --kiln "$kiln" --threads "$threads" \
  --command "$command_line" >"$results" || { echo "bench/run.sh: writing the report failed" >&2; exit 1; }
log "wrote $results"
