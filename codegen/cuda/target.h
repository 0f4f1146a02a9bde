// Resolving the CUDA target: the GPU architecture the cubin is built for.
#pragma once

#include <string>

#include "codegen/backend.h"

namespace kiln::codegen::cuda {

struct CudaTarget {
  std::string arch;  // "sm_90"
  int major = 9;
  int minor = 0;
};

// Checks `--cuda-arch` ("sm_90", "sm_80", ...) against what this NVRTC can
// build; an unknown or unsupported arch is an error listing the ones it can.
Expected<CudaTarget> resolveTarget(const TargetOptions& options);

}  // namespace kiln::codegen::cuda
