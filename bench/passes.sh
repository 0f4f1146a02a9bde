#!/usr/bin/env bash
# What the optimization passes buy, on this machine: each model compiled at
# -O0 and -O2 (kernel count, arena bytes, compile wall time and peak RSS from
# `kiln compile --report` and /usr/bin/time), both artifacts run on the same
# input, and how far -O2's outputs are from -O0's. Writes
# bench/PASSES_RESULTS.md. See bench/README.md.
#
#   bench/passes.sh [--models a,b,...] [--levels 0,2] [--threads N] [--time-limit S] [--out DIR] [--results FILE]
#
# Models and inputs are bench/export_models.py's (exported when missing,
# which needs python3-torch and python3-torchvision); the kiln CLI is
# build/bin/kiln (KILN=path for another). Steps run one after another:
# BERT-base's compile alone takes about 0.6 GB.
set -uo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
tool=bench/passes.sh
log_tag=passes
# shellcheck source=lib.sh
source "$bench/lib.sh"
command_line="${KILN:+KILN=$KILN }bench/passes.sh${*:+ $*}"

models=resnet50,mobilenet_v2,bert_base
levels=0,2
threads=2
time_limit=900
out=$bench/out
results=$bench/PASSES_RESULTS.md
usage() {
  echo "usage: $tool [--models a,b] [--levels 0,2] [--threads N] [--time-limit S] [--out DIR] [--results FILE]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --models) models=$2 ;;
    --levels) levels=$2 ;;
    --threads) threads=$2 ;;
    --time-limit) time_limit=$2 ;;
    --out) out=$2 ;;
    --results) results=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for n in "$threads" "$time_limit"; do [[ $n =~ ^[1-9][0-9]*$ ]] || die 2 "'$n' is not a positive integer"; done
[[ $levels =~ ^[0-3](,[0-3])*$ ]] || die 2 "--levels takes -O levels such as 0,2, got '$levels'"
[ -x /usr/bin/time ] || die 4 "/usr/bin/time is missing (apt-get install time)"
IFS=, read -r -a names <<<"$models"
need_kiln

for m in "${names[@]}"; do
  if [ ! -f "$out/models/$m/model.onnx" ] || [ ! -f "$out/models/$m/input.npy" ]; then
    log "exporting $m ..."
    $py "$bench/export_models.py" "$out/models" "$m" || die 1 "exporting $m failed"
  fi
done

IFS=, read -r -a level_list <<<"$levels"
for m in "${names[@]}"; do
  model=$out/models/$m/model.onnx
  dir=$out/models/$m/passes
  rm -rf "$dir"
  mkdir -p "$dir"
  for l in "${level_list[@]}"; do
    log "$m -O$l"
    # /usr/bin/time: wall seconds and peak RSS (KiB) of the compile; -q so
    # that only those reach its file.
    run_step "$dir" "compile_O$l" /usr/bin/time -q -o "$dir/compile_O$l.time" -f "%e %M" \
      "$kiln" compile "-O$l" "$model" -o "$dir/O$l.so" --report "$dir/O$l.report.json" &&
      run_step "$dir" "run_O$l" "$kiln" run "$dir/O$l.so" --input "$out/models/$m/input.npy" --threads "$threads" \
        --output-dir "$dir/O$l.out"
    rm -f "$dir/O$l.so"  # BERT-base's is about 0.5 GB
  done
done

$py "$bench/passes_report.py" --out "$out" --models "$models" --levels "$levels" --kiln "$kiln" \
  --command "$command_line" >"$results" || die 1 "writing the report failed"
log "wrote $results"
