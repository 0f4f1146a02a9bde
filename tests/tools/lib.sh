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
# finish TEST_NAME: prints the totals; the script's exit status is 0 only when nothing failed.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
