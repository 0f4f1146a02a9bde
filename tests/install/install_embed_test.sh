#!/usr/bin/env bash
# `cmake --install` into a temporary prefix, then what a user embedding Kiln
# does: compile a model with the installed kiln, build the C example with
# pkg-config and the C++ example with find_package(Kiln), run both and check
# that they print what `kiln run` prints.
#   install_embed_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/kiln-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
check() { local name=$1; shift; if "$@" >"$work/log" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/  | /' "$work/log" | tail -30; fi; }

for tool in cmake pkg-config make cc c++; do
  command -v "$tool" >/dev/null || { echo "SKIP: '$tool' is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done

check "cmake --install into a temporary prefix" cmake --install "$build" --prefix "$prefix"
libdir=$(dirname "$(find "$prefix" -name 'libkiln_rt.so' | head -1)")
for f in bin/kiln include/kiln_runtime.h include/kiln_runtime.hpp; do
  [ -e "$prefix/$f" ] && pass "installed $f" || fail "installed $f"
done
[ -n "$libdir" ] && ls "$libdir"/libkiln_rt.so.* >/dev/null 2>&1 && pass "installed libkiln_rt with its soname links" ||
  fail "installed libkiln_rt with its soname links"
[ -f "$libdir/cmake/Kiln/KilnConfig.cmake" ] && [ -f "$libdir/cmake/Kiln/KilnTargets.cmake" ] &&
  pass "installed the CMake package" || fail "installed the CMake package"
[ -f "$libdir/pkgconfig/kiln.pc" ] && pass "installed kiln.pc" || fail "installed kiln.pc"

# The installed kiln runs from its prefix (finds the installed libkiln_rt).
check "installed kiln --version" "$prefix/bin/kiln" --version
# (ldd's output is captured first: with pipefail, grep -q closing the pipe early would fail the pipeline.)
linked=$(ldd "$prefix/bin/kiln")
if grep -q "libkiln_rt.*$prefix" <<<"$linked"; then pass "installed kiln uses the installed runtime"
else fail "installed kiln uses the installed runtime"; grep kiln_rt <<<"$linked"; fi

model=$src/examples/tiny_cnn/tiny_cnn.onnx
input=$src/examples/tiny_cnn/input.npy
check "compile tiny_cnn with the installed kiln" "$prefix/bin/kiln" compile -q "$model" -o "$work/tiny_cnn.so"
"$prefix/bin/kiln" run "$work/tiny_cnn.so" --input "$input" | grep -v '^time:' >"$work/want.txt"
[ -s "$work/want.txt" ] && pass "kiln run prints outputs" || fail "kiln run prints outputs"

# C, through pkg-config.
export PKG_CONFIG_PATH=$libdir/pkgconfig
check "pkg-config finds kiln" pkg-config --exists kiln
[ "$(pkg-config --variable=includedir kiln | xargs realpath)" = "$(realpath "$prefix/include")" ] &&
  pass "kiln.pc points into the prefix" || fail "kiln.pc points into the prefix"
mkdir -p "$work/embed_c"
check "build examples/embed_c with pkg-config" make -C "$work/embed_c" -f "$src/examples/embed_c/Makefile" \
  VPATH="$src/examples/embed_c" CC=cc
"$work/embed_c/embed_c" "$work/tiny_cnn.so" "$input" >"$work/c.txt" 2>"$work/c.err"
rc=$?
if [ $rc -eq 0 ] && diff -u "$work/want.txt" "$work/c.txt"; then pass "embed_c prints what kiln run prints"
else fail "embed_c prints what kiln run prints (exit $rc)"; cat "$work/c.err"; fi
printf 'not an artifact' >"$work/bad.so"
"$work/embed_c/embed_c" "$work/bad.so" "$input" >/dev/null 2>"$work/c.err"
rc=$?
[ $rc -ne 0 ] && grep -q "bad.so" "$work/c.err" && pass "embed_c reports a bad artifact" ||
  { fail "embed_c reports a bad artifact (exit $rc)"; cat "$work/c.err"; }

# C++, through find_package(Kiln).
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
check "configure examples/embed_cpp with find_package(Kiln)" cmake -S "$src/examples/embed_cpp" -B "$work/embed_cpp" \
  "${generator[@]}" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
check "build examples/embed_cpp" cmake --build "$work/embed_cpp"
"$work/embed_cpp/embed_cpp" "$work/tiny_cnn.so" "$input" >"$work/cpp.txt" 2>"$work/cpp.err"
rc=$?
if [ $rc -eq 0 ] && diff -u "$work/want.txt" "$work/cpp.txt"; then pass "embed_cpp prints what kiln run prints"
else fail "embed_cpp prints what kiln run prints (exit $rc)"; cat "$work/cpp.err"; fi
linked=$(ldd "$work/embed_cpp/embed_cpp")
if grep -q "libkiln_rt.*$prefix" <<<"$linked"; then pass "embed_cpp links the installed runtime"
else fail "embed_cpp links the installed runtime"; fi

# Python, from the installed tree.
pydir=$(dirname "$(find "$prefix" -name 'kiln.cpython*.so' | head -1)")
if [ -n "$pydir" ] && [ "$pydir" != "." ]; then
  # A sanitized build (KILN_SANITIZER_PRELOAD, from tests/install/CMakeLists.txt):
  # python3 preloads the sanitizer runtime the module needs, and its own
  # allocations, alive at exit, are not leak-checked.
  pyenv=(PYTHONPATH="$pydir")
  [ -z "${KILN_SANITIZER_PRELOAD:-}" ] ||
    pyenv+=(LD_PRELOAD="$KILN_SANITIZER_PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
  check "import kiln from the installed tree" env "${pyenv[@]}" /usr/bin/python3 -c "
import kiln, numpy as np
m = kiln.load('$work/tiny_cnn.so')
(y,) = m([np.load('$input')])
assert kiln.__file__.startswith('$prefix'), kiln.__file__
assert y.shape == (1, 10) and abs(float(y.sum()) - 1) < 1e-4, y
"
else
  echo "NOTE: the Python binding was not built, so its install is not checked"
fi

echo "install_embed_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
