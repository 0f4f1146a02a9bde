// A lowered Program -> one CUDA C translation unit (a __global__ function
// per kernel-IR stage), the launch plan that runs it, and the weights.
#pragma once

#include <string>
#include <vector>

#include "compiler/lower/program.h"
#include "cuda_plan.h"

namespace kiln::codegen::cuda {

struct CudaModule {
  std::string source;        // CUDA C for NVRTC
  artifact::CudaPlan plan;   // buffers (program buffer i is plan buffer i) and launches
  std::vector<uint8_t> weights;  // every constant, at kCudaWeightAlignment offsets
  uint64_t workspace_bytes = 0;  // the program's arena plus GEMM scratch matrices
};

// Fails as unsupported, naming the kernel and its origin, on what the CUDA
// backend cannot generate yet (a dtype, a run-time shape). Contractions run
// as cuBLASLt GEMMs in `precision` (contraction.h).
Expected<CudaModule> emitModule(const lower::Program& program, artifact::CudaPrecision precision);

}  // namespace kiln::codegen::cuda
