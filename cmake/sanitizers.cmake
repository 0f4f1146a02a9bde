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

# Programs the tests build against this tree's sanitized libraries (the
# toolchain and install tests' C and C++ embedders) need the sanitizer runtime
# those libraries call into: sanitizer-cc/ holds cc and c++ that run this
# build's compilers with the same -fsanitize flags, and such a test puts them
# first on PATH (KILN_SANITIZED_CC_ENV, an ENVIRONMENT_MODIFICATION value). A
# program that cannot be rebuilt, Debian's python3 loading the binding, gets
# the sanitizer's shared runtime preloaded (KILN_SANITIZER_PRELOAD).
set(KILN_SANITIZED_CC_ENV "")
set(KILN_SANITIZER_PRELOAD "")
if(KILN_SANITIZE)
  set(wrappers ${CMAKE_BINARY_DIR}/sanitizer-cc)
  foreach(pair "cc;${CMAKE_C_COMPILER}" "c++;${CMAKE_CXX_COMPILER}")
    list(GET pair 0 name)
    list(GET pair 1 compiler)
    file(WRITE ${wrappers}/${name} "#!/bin/sh\n# ${name} for programs linked with Kiln's sanitized libraries (cmake/sanitizers.cmake)\n"
      "exec '${compiler}' -fsanitize=${KILN_SANITIZE} -fno-sanitize-recover=all \"$@\"\n")
    file(CHMOD ${wrappers}/${name} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endforeach()
  set(KILN_SANITIZED_CC_ENV "PATH=path_list_prepend:${wrappers}")
  if(KILN_SANITIZE MATCHES "address")
    if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      set(runtime libclang_rt.asan-${CMAKE_SYSTEM_PROCESSOR}.so)
    else()
      set(runtime libasan.so)
    endif()
    execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=${runtime}
      OUTPUT_VARIABLE KILN_SANITIZER_PRELOAD OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(NOT EXISTS "${KILN_SANITIZER_PRELOAD}")
      message(FATAL_ERROR "KILN_SANITIZE=${KILN_SANITIZE}: the compiler has no shared ${runtime} (scripts/install-deps.sh installs libclang-rt-14-dev)")
    endif()
  endif()
endif()

if(KILN_FUZZ)
  # Coverage feedback for the libraries; only the fuzz targets link libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
