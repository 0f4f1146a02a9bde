#!/usr/bin/env bash
# Kiln against ONNX Runtime and PyTorch on the benchmark models, on this
# machine, in one run; writes bench/RESULTS.md. See bench/README.md.
#
#   bench/run.sh [--threads N] [--iters N] [--warmup N] [--max-time S] [--time-limit S]
#                [--models a,b,...] [--out DIR] [--results FILE]
#
# Installs what it needs and is missing: python3-torch and python3-torchvision
# with apt-get (large, so not in scripts/install-deps.sh), onnxruntime-node
# into bench/node_modules with `npm ci --ignore-scripts`, and the kiln CLI
# (build/bin/kiln; set KILN=path to use another build).
set -uo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$bench")
command_line="${KILN:+KILN=$KILN }bench/run.sh $*"

threads=$(nproc)
iters=50
warmup=10
max_time=20     # seconds of timed runs per engine and model (warm-up gets a fifth more)
time_limit=900  # seconds before one compile or one engine's benchmark is killed
models=squeezenet1_1,mobilenet_v2,efficientnet_b0,resnet50,small_encoder,bert_base
out=$bench/out
results=$bench/RESULTS.md

usage() { echo "usage: bench/run.sh [--threads N] [--iters N] [--warmup N] [--max-time S] [--time-limit S] [--models a,b] [--out DIR] [--results FILE]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --threads) threads=$2 ;;
    --iters) iters=$2 ;;
    --warmup) warmup=$2 ;;
    --max-time) max_time=$2 ;;
    --time-limit) time_limit=$2 ;;
    --models) models=$2 ;;
    --out) out=$2 ;;
    --results) results=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for n in "$threads" "$iters" "$time_limit"; do [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: '$n' is not a positive integer" >&2; exit 2; }; done
[[ $warmup =~ ^[0-9]+$ && $max_time =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench/run.sh: bad --warmup or --max-time" >&2; exit 2; }

py=/usr/bin/python3
log() { echo "[bench] $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- what the peers and Kiln need -------------------------------------------
if ! $py -c 'import torch, torchvision, onnx, numpy' 2>/dev/null; then
  log "installing python3-torch python3-torchvision python3-onnx (Debian) ..."
  as_root apt-get install -y python3-torch python3-torchvision python3-onnx python3-numpy >/dev/null ||
    { echo "bench/run.sh: apt-get install python3-torch python3-torchvision failed" >&2; exit 4; }
fi
if [ ! -f "$bench/node_modules/onnxruntime-node/package.json" ]; then
  log "installing onnxruntime-node (npm, --ignore-scripts) ..."
  (cd "$bench" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) ||
    { echo "bench/run.sh: npm ci --ignore-scripts in bench/ failed" >&2; exit 4; }
fi
kiln=${KILN:-$root/build/bin/kiln}
if [ ! -x "$kiln" ]; then
  log "building the kiln CLI into build/ ..."
  bash "$root/scripts/install-deps.sh" &&
    (cd "$root" && export CCACHE_BASEDIR="$root" &&
      { [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; } &&
      cmake --build build --target kiln -j "$(nproc)") ||
    { echo "bench/run.sh: building kiln failed" >&2; exit 5; }
fi

# --- 1. export ----------------------------------------------------------------
mkdir -p "$out/models"
IFS=, read -r -a names <<<"$models"
log "exporting ${names[*]} (opset 17, batch 1, random weights) ..."
$py "$bench/export_models.py" "$out/models" "${names[@]}" || { echo "bench/run.sh: exporting the models failed" >&2; exit 1; }

# --- 2. run every engine on every model -----------------------------------------
# run_engine DIR NAME COMMAND...: stdout to DIR/NAME.json, stderr to DIR/NAME.err,
# exit status to DIR/NAME.rc (124: killed after --time-limit).
run_engine() {
  local dir=$1 name=$2
  shift 2
  local t0=$(date +%s.%N)
  timeout --kill-after=10 "$time_limit" "$@" >"$dir/$name.json" 2>"$dir/$name.err"
  local rc=$?
  echo "$rc" >"$dir/$name.rc"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' >"$dir/$name.seconds"
  log "  $name: exit $rc, $(cat "$dir/$name.seconds") s"
  return $rc
}

timing=(--threads "$threads" --iters "$iters" --warmup "$warmup" --max-time "$max_time")
for m in "${names[@]}"; do
  dir=$out/models/$m
  rm -f "$dir"/*.json "$dir"/*.err "$dir"/*.rc "$dir"/*.seconds "$dir"/*_output.npy "$dir/kiln.so"
  rm -rf "$dir/kiln_out"
  log "$m"
  if run_engine "$dir" compile "$kiln" compile -O2 "$dir/model.onnx" -o "$dir/kiln.so"; then
    run_engine "$dir" kiln "$kiln" bench "$dir/kiln.so" --input "$dir/input.npy" "${timing[@]}" --json &&
      run_engine "$dir" kiln_run "$kiln" run "$dir/kiln.so" --input "$dir/input.npy" --threads "$threads" \
        --output-dir "$dir/kiln_out" && cp "$dir/kiln_out/output_0.npy" "$dir/kiln_output.npy"
  fi
  run_engine "$dir" ort node "$bench/ort_bench.js" --model "$dir/model.onnx" --input "$dir/input.npy" "${timing[@]}" \
    --output "$dir/ort_output.npy"
  for mode in jit eager; do
    run_engine "$dir" "torch_$mode" $py "$bench/torch_bench.py" --model "$m" --mode "$mode" --input "$dir/input.npy" \
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
