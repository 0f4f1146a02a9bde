// Resolving the CUDA target: the GPU architecture the cubin is built for.
#pragma once

#include <string>

#include "codegen/backend.h"
#include "cuda_plan.h"

namespace kiln::codegen::cuda {

struct CudaTarget {
  std::string arch;  // "sm_90"
  int major = 9;
  int minor = 0;
  // The arithmetic of contractions (--cuda-precision).
  artifact::CudaPrecision precision = artifact::CudaPrecision::kFp32;
  std::string precision_name = "fp32";
};

// Checks `--cuda-arch` ("sm_90", "sm_80", ...) against what this NVRTC can
// build; an unknown or unsupported arch is an error listing the ones it can.
// Also resolves --cuda-precision (fp32 when empty).
Expected<CudaTarget> resolveTarget(const TargetOptions& options);

}  // namespace kiln::codegen::cuda
