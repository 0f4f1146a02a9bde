#!/usr/bin/env bash
# Regenerates the docs that come from the code itself:
#   docs/cli.md  from the CLI's own --help output (every subcommand),
#   docs/ops.md  from the op registry (`kiln ops`).
#   scripts/gen-docs.sh [--check] [KILN_BINARY]     (default: build/bin/kiln)
# --check writes nothing and fails when a checked-in file is stale (ctest: docs_fresh_test).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
kiln=${1:-build/bin/kiln}
[ -x "$kiln" ] || { echo "gen-docs: '$kiln' not found; build first (scripts/build.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Subcommands as --help lists them (hidden ones, like `ops`, are not listed).
subcommands=$("$kiln" --help | awk '/^Subcommands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}')
{
  echo "# kiln command line"
  echo
  echo "Generated from \`kiln --help\` by \`scripts/gen-docs.sh\`; do not edit by hand (the docs_fresh_test"
  echo "ctest fails when this file is stale). A tutorial is in [getting-started.md](getting-started.md)."
  echo
  echo "Progress: long work (\`compile\`) shows one status line on a terminal and is quiet when stderr is a"
  echo "pipe or a file; \`--verbose\` prints each stage's time anyway, \`--quiet\` prints nothing on success."
  echo "Errors are one line, \`kiln: error: ...\`, naming the file, node or input at fault."
  echo
  echo "## kiln"
  echo
  echo '```text'
  "$kiln" --help
  echo '```'
  for cmd in $subcommands; do
    echo
    echo "## kiln $cmd"
    echo
    echo '```text'
    "$kiln" "$cmd" --help
    echo '```'
  done
} >"$tmp/cli.md"
"$kiln" ops >"$tmp/ops.md"

status=0
for f in cli.md ops.md; do
  if [ $check -eq 1 ]; then
    if ! diff -u "docs/$f" "$tmp/$f" >"$tmp/$f.diff" 2>&1; then
      echo "gen-docs: docs/$f is stale; run scripts/gen-docs.sh and commit the result" >&2
      head -40 "$tmp/$f.diff" >&2
      status=1
    fi
  else
    cp "$tmp/$f" "docs/$f"
    echo "gen-docs: wrote docs/$f"
  fi
done
exit $status
