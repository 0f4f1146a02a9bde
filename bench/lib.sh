# Sourced by the benchmark runners (bench/run.sh, bench/quant/run.sh, ...):
# the options they share, installing the peers, finding the kiln CLI, and
# running one timed step.
#
# A runner sets `tool` (its name in messages, e.g. bench/run.sh), `log_tag`,
# and its defaults for threads, iters, warmup, max_time, time_limit, models,
# out and results, then calls `parse_bench_options "$@"`.
# shellcheck shell=bash

py=/usr/bin/python3
bench=${bench:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
root=${root:-$(dirname "$bench")}

log() { echo "[${log_tag:-bench}] $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
die() {  # STATUS MESSAGE: the one-line error every runner gives
  echo "$tool: $2" >&2
  exit "$1"
}

bench_usage() {
  echo "usage: $tool [--threads N] [--iters N] [--warmup N] [--max-time S] [--time-limit S] [--rounds N] [--models a,b] [--out DIR] [--results FILE]" >&2
  exit 2
}

# parse_bench_options ARGS...: sets threads, iters, warmup, max_time,
# time_limit, rounds, models, out, results and `names` (the --models list as
# an array). `rounds` keeps the runner's default (1 where it set none).
parse_bench_options() {
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || bench_usage
    case $1 in
      --threads) threads=$2 ;;
      --iters) iters=$2 ;;
      --warmup) warmup=$2 ;;
      --max-time) max_time=$2 ;;
      --time-limit) time_limit=$2 ;;
      --rounds) rounds=$2 ;;
      --models) models=$2 ;;
      --out) out=$2 ;;
      --results) results=$2 ;;
      *) bench_usage ;;
    esac
    shift 2
  done
  local n
  rounds=${rounds:-1}
  for n in "$threads" "$iters" "$time_limit" "$rounds"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die 2 "'$n' is not a positive integer"
  done
  [[ $warmup =~ ^[0-9]+$ && $max_time =~ ^[0-9]+(\.[0-9]+)?$ ]] || die 2 "bad --warmup or --max-time"
  IFS=, read -r -a names <<<"$models"
}

# need_python_packages IMPORTS -- DEBIAN_PACKAGES...: apt-get installs the
# packages when /usr/bin/python3 cannot import every module in IMPORTS.
need_python_packages() {
  local imports=$1
  shift 2
  $py -c "import $imports" 2>/dev/null && return 0
  log "installing $* (Debian) ..."
  as_root apt-get install -y "$@" >/dev/null || die 4 "apt-get install $* failed"
}

# need_onnxruntime: onnxruntime-node in bench/node_modules (npm, --ignore-scripts).
need_onnxruntime() {
  [ -f "$bench/node_modules/onnxruntime-node/package.json" ] && return 0
  log "installing onnxruntime-node (npm, --ignore-scripts) ..."
  (cd "$bench" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null) || die 4 "npm ci --ignore-scripts in bench/ failed"
}

# need_kiln: sets `kiln` to $KILN or build/bin/kiln, building the latter if missing.
need_kiln() {
  kiln=${KILN:-$root/build/bin/kiln}
  [ -x "$kiln" ] && return 0
  log "building the kiln CLI into build/ ..."
  bash "$root/scripts/install-deps.sh" &&
    (cd "$root" && export CCACHE_BASEDIR="$root" &&
      { [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null; } &&
      cmake --build build --target kiln -j "$(nproc)") ||
    die 5 "building kiln failed"
}

# run_step DIR NAME COMMAND...: stdout to DIR/NAME.json, stderr to DIR/NAME.err,
# exit status to DIR/NAME.rc (124: killed after --time-limit), seconds to
# DIR/NAME.seconds; returns the command's status.
run_step() {
  local dir=$1 name=$2
  shift 2
  local t0
  t0=$(date +%s.%N)
  timeout --kill-after=10 "$time_limit" "$@" >"$dir/$name.json" 2>"$dir/$name.err"
  local rc=$?
  echo "$rc" >"$dir/$name.rc"
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' >"$dir/$name.seconds"
  log "  $name: exit $rc, $(cat "$dir/$name.seconds") s"
  return $rc
}
