#!/usr/bin/env bash
# `kiln compile --report FILE.html`, opened in headless Chromium as a user
# opens it: the DOM must hold the tables and the graph's <svg>, and a
# screenshot must show a rendered page (not blank). Also: the JSON report is
# still chosen by extension, and without Graphviz the page says so.
#   report_html_test.sh KILN_BINARY SOURCE_DIR
set -uo pipefail
kiln=$1
src=$2
py=/usr/bin/python3
model=$src/examples/tiny_cnn/tiny_cnn.onnx
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

"$kiln" compile -q "$model" -o "$work/m.so" --report "$work/report.html" && pass "compile --report FILE.html" ||
  fail "compile --report FILE.html"
"$kiln" compile -q "$model" -o "$work/m.so" --report "$work/report.json" && pass "compile --report FILE.json" ||
  fail "compile --report FILE.json"
"$py" -c "
import json, sys
r = json.load(open('$work/report.json'))
assert r['passes'] and r['kernels'] > 0 and r['arena_bytes'] >= 0, r
" && pass "the JSON report parses" || fail "the JSON report parses"

# The page itself, without a browser: every section, and an inline picture when dot exists.
for id in summary-table io-table passes-table kernels-table memory-table; do
  grep -q "id=\"$id\"" "$work/report.html" && pass "the page has #$id" || fail "the page has #$id"
done
grep -q "http://\|https://" <(grep -v 'xmlns\|www.w3.org' "$work/report.html") &&
  fail "the page is self-contained (no external links)" || pass "the page is self-contained (no external links)"
if command -v dot >/dev/null; then
  grep -q "<svg" "$work/report.html" && pass "the graph is an inline SVG" || fail "the graph is an inline SVG"
else
  echo "NOTE: Graphviz 'dot' is not installed; the picture itself is not checked"
fi
mkdir -p "$work/empty_path"
PATH="$work/empty_path" "$kiln" compile -q "$model" -o "$work/m.so" --report "$work/nodot.html" &&
  grep -q 'id="graph-missing".*not found on PATH' "$work/nodot.html" && ! grep -q "<svg" "$work/nodot.html" &&
  pass "without dot the page says so" || fail "without dot the page says so"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIP: chromium is not installed (scripts/install-deps.sh installs it); the browser checks did not run"
  echo "report_html_test: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  exit 77
fi
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir="$work/profile")
timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$work/report.html" >"$work/dom.html" 2>"$work/chromium.err"
"$py" - "$work/dom.html" <<'PY' && pass "Chromium's DOM has the tables and the graph" || { fail "Chromium's DOM has the tables and the graph"; tail -5 "$work/chromium.err"; }
import sys
from html.parser import HTMLParser
class Count(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.ids = {}, set()
    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.ids.update(v for k, v in attrs if k == "id")
c = Count()
c.feed(open(sys.argv[1]).read())
assert c.tags.get("svg", 0) >= 1, "no <svg> in the rendered DOM"
assert c.tags.get("table", 0) >= 5, c.tags
need = {"summary-table", "passes-table", "kernels-table", "memory-table"}
assert need <= c.ids, need - c.ids
# The graph's nodes are drawn: one <g class="node"> per graph node at least.
assert c.tags.get("g", 0) > 5, c.tags
PY
timeout 120 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1024,1400 --screenshot="$work/page.png" \
  "file://$work/report.html" >/dev/null 2>>"$work/chromium.err"
"$py" - "$work/page.png" <<'PY' && pass "the screenshot shows a rendered page" || { fail "the screenshot shows a rendered page"; tail -5 "$work/chromium.err"; }
import struct, sys, zlib
# A minimal PNG reader (8-bit RGB/RGBA, no interlace): enough for Chromium's screenshots.
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
bpp = 3 if color == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
rows, prev = [], bytearray(stride)
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    prev = line
def dark(row):  # pixels clearly darker than the white page
    return sum(1 for x in range(0, len(row), bpp) if row[x] + row[x + 1] + row[x + 2] < 600)
ink = [dark(r) for r in rows]
inked_rows = sum(1 for k in ink if k)
assert w >= 1000 and h >= 1000, (w, h)
assert inked_rows > h // 10, f"only {inked_rows} of {h} rows have any ink: the page looks blank"
# Ink in the lower part too: the page rendered past its first section (tables, picture).
assert sum(1 for k in ink[h // 2:] if k) > 0 or inked_rows > h // 5, "nothing rendered below the top half"
print(f"screenshot {w}x{h}: {inked_rows} rows with ink")
PY

finish report_html_test
