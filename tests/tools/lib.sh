# Sourced by the CLI test scripts: a scratch folder ($work) removed on exit,
# PASS/FAIL lines, and the totals line that decides the exit status.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
# fail NAME [LOG]: LOG's lines are shown indented under the FAIL line.
fail() {
  echo "FAIL $1"
  if [ -n "${2:-}" ]; then sed 's/^/  | /' "$2"; fi
  failed=$((failed + 1))
}
# check NAME COMMAND...: passes when COMMAND exits 0; shows its last output lines otherwise.
check() {
  local name=$1
  shift
  if "$@" >"$work/log" 2>&1; then pass "$name"; else tail -30 "$work/log" >"$work/log.tail"; fail "$name" "$work/log.tail"; fi
}
# expect NAME WANT_RC WANT_STDERR_REGEX -- COMMAND...: runs COMMAND with its
# stdout in $work/out and stderr in $work/err; passes when it exits WANT_RC and
# (unless the regex is empty) stderr matches. With expect_one_line_errors=1 a
# failing command's error must also be exactly one line.
expect() {
  local name=$1 want_rc=$2 want_err=$3
  shift 4
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" -ne "$want_rc" ]; then fail "$name: exit $rc, expected $want_rc" "$work/err"; return; fi
  if [ -n "$want_err" ] && ! grep -qE -- "$want_err" "$work/err"; then
    fail "$name: stderr does not match /$want_err/" "$work/err"; return
  fi
  if [ "${expect_one_line_errors:-0}" = 1 ] && [ "$want_rc" -ne 0 ] && [ "$(wc -l <"$work/err")" -ne 1 ]; then
    fail "$name: the error is not one line" "$work/err"; return
  fi
  pass "$name"
}
# finish TEST_NAME: prints the totals; the script's exit status is 0 only when nothing failed.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# runs_here KILN MODEL INPUT CPU: whether this machine runs MODEL compiled for
# --cpu CPU, as the runtime's own load check says.
runs_here() {
  "$1" compile "$2" -o "$work/runs_here.so" --cpu "$4" -q 2>/dev/null &&
    "$1" run "$work/runs_here.so" --input "$3" >/dev/null 2>&1
}
