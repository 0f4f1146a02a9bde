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
  add_link_options(-fsanitize=${KILN_SANITIZE})
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
