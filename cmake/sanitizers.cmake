# Sanitizer and fuzzing builds (see docs/security.md, scripts/sanitize.sh and
# scripts/fuzz.sh). Both apply to every target of the build folder.
#
#   -DKILN_SANITIZE=address,undefined   ASan + LeakSanitizer + UBSan
#   -DKILN_SANITIZE=thread              TSan
#   -DKILN_FUZZ=ON                      libFuzzer targets in tests/fuzz (clang
#                                       only; implies address,undefined)
#
# Code generated into artifacts is not instrumented: the sanitizers see the
# compiler, the runtime and the tests, not the kernels an artifact runs.
set(KILN_SANITIZE "" CACHE STRING "Sanitizers for every target: address,undefined or thread")
option(KILN_FUZZ "Build the libFuzzer targets in tests/fuzz (needs clang)" OFF)

if(KILN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KILN_FUZZ needs clang (libFuzzer): configure with CC=clang-14 CXX=clang++-14")
  endif()
  if(NOT KILN_SANITIZE)
    set(KILN_SANITIZE "address,undefined" CACHE STRING "" FORCE)
  endif()
endif()

if(KILN_SANITIZE)
  if(NOT KILN_SANITIZE MATCHES "^(address|undefined|address,undefined|undefined,address|thread)$")
    message(FATAL_ERROR "KILN_SANITIZE='${KILN_SANITIZE}': expected address,undefined or thread")
  endif()
  # Any UB report fails the run. vptr and function checks need RTTI and
  # signature prefixes that LLVM's libraries and generated code lack.
  add_compile_options(-fsanitize=${KILN_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  # -O1 with line tables only (they come after the build type's flags, so
  # they win): reports still name file:line, and the build costs about what
  # the plain -O2 -g build does, where -O2 -g under the sanitizers costs 2.4
  # times as much (measured: docs/security.md, "What CI runs").
  add_compile_options(-O1 -g1)
  add_link_options(-fsanitize=${KILN_SANITIZE})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # Debian's gcc links --as-needed by default and clang does not: without
    # it every test would need libcuda.so.1 (the CUDA backend links the
    # driver stub) even on machines with no GPU.
    add_link_options(-Wl,--as-needed)
  endif()
  if(KILN_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize=vptr)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      add_compile_options(-fno-sanitize=function)
    endif()
  endif()
endif()

if(KILN_FUZZ)
  # Coverage feedback for the libraries; only the fuzz targets link libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
