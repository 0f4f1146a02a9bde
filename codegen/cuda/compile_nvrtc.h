// CUDA C -> cubin for the target arch plus PTX, through NVRTC in-process
// (no GPU needed, no external compiler).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/cuda/target.h"
#include "compiler/support/status.h"

namespace kiln::codegen::cuda {

struct CompiledKernels {
  std::vector<uint8_t> cubin;
  std::string ptx;
};

Expected<CompiledKernels> compileWithNvrtc(const std::string& source, const CudaTarget& target);

}  // namespace kiln::codegen::cuda
