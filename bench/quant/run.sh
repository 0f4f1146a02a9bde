#!/usr/bin/env bash
# Quantized and reduced-precision Kiln against ONNX Runtime: fp32, INT8
# (static, dynamic), BF16, and ONNX Runtime running Kiln's QDQ export, on the
# trained digits models (real data, held-out accuracy) and on ResNet-50 and
# BERT-base (speed). Writes bench/quant/RESULTS.md. See bench/README.md.
#
#   bench/quant/run.sh [--threads N] [--iters N] [--warmup N] [--max-time S] [--time-limit S]
#                      [--models a,b,...] [--out DIR] [--results FILE]
#
# Installs what it needs and is missing: python3-torch, python3-torchvision and
# python3-sklearn with apt-get (only the benchmarks need them), onnxruntime-node
# into bench/node_modules, the kiln CLI (build/bin/kiln; KILN=path for another).
# A variant the kiln CLI has no flag for is reported as "not available".
set -uo pipefail
quant=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$quant")
tool=bench/quant/run.sh
log_tag=quant
command_line="${KILN:+KILN=$KILN }bench/quant/run.sh $*"

threads=2
iters=50
warmup=10
max_time=10
time_limit=900
models=digits_cnn,digits_transformer,digits_mlp,resnet50,bert_base
out=$bench/out/quant
results=$quant/RESULTS.md
# shellcheck source=../lib.sh
source "$bench/lib.sh"
parse_bench_options "$@"
for m in "${names[@]}"; do
  case $m in digits_cnn | digits_transformer | digits_mlp | resnet50 | bert_base) ;;
    *) die 2 "unknown model '$m' (known: digits_cnn, digits_transformer, digits_mlp, resnet50, bert_base)" ;;
  esac
done

# --- what the peers and Kiln need -------------------------------------------
need_python_packages "torch, torchvision, sklearn, onnx, numpy" -- \
  python3-torch python3-torchvision python3-sklearn python3-onnx python3-numpy
need_onnxruntime
need_kiln

# What this kiln can do: a variant whose flag is missing becomes a "not available" row.
help=$("$kiln" compile --help 2>&1)
lacks() { grep -qE -- "$1" <<<"$help" && return 1; echo "not available: kiln lacks $2" ; }
no_int8=$(lacks '--quantize' '--quantize')
[ -n "$no_int8" ] || no_int8=$(lacks '--calibration ' '--calibration')
no_dynamic=$(lacks 'dynamic-int8' '--quantize dynamic-int8')
no_method=$(lacks '--calibration-method' '--calibration-method')
no_bf16=$(lacks '^ *--precision' '--precision bf16')
no_validation=$(lacks '--validation' '--validation')

# --- 1. models and data ----------------------------------------------------------
mkdir -p "$out" "$bench/out/models"
for m in "${names[@]}"; do
  case $m in
    digits_*)
      if [ ! -f "$out/$m/model.onnx" ] || [ ! -f "$out/digits/validation_images.npy" ]; then
        log "training $m on scikit-learn's digits (a minute or two) ..."
        $py "$quant/train.py" --out "$out" --models "$m" || { echo "bench/quant/run.sh: training $m failed" >&2; exit 1; }
      fi ;;
    *)
      log "exporting $m (opset 17, batch 1, random weights) ..."
      $py "$bench/export_models.py" "$bench/out/models" "$m" || { echo "bench/quant/run.sh: exporting $m failed" >&2; exit 1; }
      mkdir -p "$out/$m"
      cp "$bench/out/models/$m/model.onnx" "$bench/out/models/$m/input.npy" "$out/$m/"
      [ -f "$out/$m/validation_inputs.npy" ] || $py "$quant/inputs.py" "$m" "$out/$m" ||
        { echo "bench/quant/run.sh: writing inputs for $m failed" >&2; exit 1; } ;;
  esac
done

# --- 2. every variant of every model ---------------------------------------------
not_available() { echo "$3" >"$1/$2.na"; log "  $2: $3"; }

timing=(--threads "$threads" --iters "$iters" --warmup "$warmup" --max-time "$max_time")
# kiln_variant DIR NAME VALIDATION REASON COMPILE_FLAGS...: compile, time, run on the validation inputs.
kiln_variant() {
  local dir=$1 name=$2 validation=$3 reason=$4
  shift 4
  [ -z "$reason" ] || { not_available "$dir" "$name" "$reason"; return; }
  run_step "$dir" "$name.compile" "$kiln" compile -O2 "$dir/model.onnx" -o "$dir/$name.so" "$@" || return
  run_step "$dir" "$name" "$kiln" bench "$dir/$name.so" --input "$dir/input.npy" "${timing[@]}" --json &&
    run_step "$dir" "$name.eval" $py "$quant/evaluate.py" --kiln "$kiln" --artifact "$dir/$name.so" \
      --images "$validation" --out "$dir/$name.outputs.npy" --threads "$threads"
}

for m in "${names[@]}"; do
  dir=$out/$m
  rm -f "$dir"/*.json "$dir"/*.err "$dir"/*.rc "$dir"/*.seconds "$dir"/*.na "$dir"/*.so "$dir"/*.outputs.npy "$dir/qdq.onnx"
  log "$m"
  case $m in
    digits_*)
      calibration=$out/digits/calibration
      validation=$out/digits/validation_images.npy
      # The compile-time accuracy report runs on held-out sets (kept in *.compile.err).
      quant_flags=(--calibration "$calibration")
      [ -n "$no_validation" ] || quant_flags+=(--validation "$out/digits/validation") ;;
    *)
      calibration=$dir/calibration
      validation=$dir/validation_inputs.npy
      quant_flags=(--calibration "$calibration") ;;
  esac

  run_step "$dir" ort_fp32 node "$bench/ort_bench.js" --model "$dir/model.onnx" --input "$dir/input.npy" "${timing[@]}" &&
    run_step "$dir" ort_fp32.eval node "$quant/ort_evaluate.js" --model "$dir/model.onnx" --images "$validation" \
      --output "$dir/ort_fp32.outputs.npy" --threads "$threads"
  kiln_variant "$dir" kiln_fp32 "$validation" ""
  kiln_variant "$dir" kiln_int8 "$validation" "$no_int8" --quantize int8 "${quant_flags[@]}"
  case $m in digits_*)
    for method in percentile entropy; do
      kiln_variant "$dir" "kiln_int8_$method" "$validation" "${no_int8:-$no_method}" --quantize int8 \
        "${quant_flags[@]}" --calibration-method "$method"
    done ;;
  esac
  case $m in bert_base | digits_transformer | digits_mlp)
    kiln_variant "$dir" kiln_dynamic_int8 "$validation" "$no_dynamic" --quantize dynamic-int8 ;;
  esac
  kiln_variant "$dir" kiln_bf16 "$validation" "$no_bf16" --precision bf16

  # ONNX Runtime on the same quantized model: Kiln's QDQ graph (-O0: before fold-qdq).
  if [ -n "$no_int8" ]; then
    not_available "$dir" ort_qdq "$no_int8"
  elif run_step "$dir" ort_qdq.export "$kiln" compile -O0 "$dir/model.onnx" -o "$dir/qdq.onnx" --emit onnx \
    --quantize int8 --calibration "$calibration"; then
    run_step "$dir" ort_qdq node "$bench/ort_bench.js" --model "$dir/qdq.onnx" --input "$dir/input.npy" "${timing[@]}" &&
      run_step "$dir" ort_qdq.eval node "$quant/ort_evaluate.js" --model "$dir/qdq.onnx" --images "$validation" \
        --output "$dir/ort_qdq.outputs.npy" --threads "$threads"
  fi
done

# --- 3. the report ----------------------------------------------------------------
$py "$quant/report.py" --out "$out" --models "$models" --kiln "$kiln" --threads "$threads" \
  --command "$command_line" >"$results" || { echo "bench/quant/run.sh: writing the report failed" >&2; exit 1; }
log "wrote $results"
