// Packaging a CUDA artifact: the description, launch plan, cubin, PTX and
// weights as sections of the same ELF container the CPU backend makes (linked
// by codegen/cpu's LLD step, then sealed with the checksum). It holds no host
// code: the runtime reads every section from the checked bytes.
#pragma once

#include <string>
#include <vector>

#include "artifact_format.h"
#include "codegen/cuda/compile_nvrtc.h"
#include "codegen/cuda/emit_module.h"

namespace kiln::codegen::cuda {

Status packageArtifact(const artifact::ModelDesc& desc, const CudaModule& module, const CompiledKernels& kernels,
                       const std::string& path);

}  // namespace kiln::codegen::cuda
