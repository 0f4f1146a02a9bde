// NVRTC, opened on first use rather than linked into the kiln CLI and
// library: loading libnvrtc costs every process about 28 MB of resident
// memory (its relocations) and start-up time, and only `--target cuda`
// needs it. The library is the one the build found
// (KILN_NVRTC_DEFAULT_PATH), then NVRTC's soname on the loader's search
// path; the environment variable KILN_NVRTC_LIBRARY names another.
#pragma once

#include <nvrtc.h>

#include "compiler/support/status.h"

namespace kiln::codegen::cuda {

struct NvrtcApi {
  decltype(&::nvrtcCreateProgram) createProgram = nullptr;
  decltype(&::nvrtcCompileProgram) compileProgram = nullptr;
  decltype(&::nvrtcDestroyProgram) destroyProgram = nullptr;
  decltype(&::nvrtcGetProgramLogSize) getProgramLogSize = nullptr;
  decltype(&::nvrtcGetProgramLog) getProgramLog = nullptr;
  decltype(&::nvrtcGetCUBINSize) getCubinSize = nullptr;
  decltype(&::nvrtcGetCUBIN) getCubin = nullptr;
  decltype(&::nvrtcGetPTXSize) getPtxSize = nullptr;
  decltype(&::nvrtcGetPTX) getPtx = nullptr;
  decltype(&::nvrtcGetErrorString) getErrorString = nullptr;
  decltype(&::nvrtcGetNumSupportedArchs) getNumSupportedArchs = nullptr;
  decltype(&::nvrtcGetSupportedArchs) getSupportedArchs = nullptr;
};

// The loaded API, or why it could not be loaded (kUnsupported). Loaded
// once per process; thread-safe.
Expected<const NvrtcApi*> nvrtc();

}  // namespace kiln::codegen::cuda
