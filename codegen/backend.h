// The codegen interface: a backend turns a lowered Program into an artifact.
// codegen/cpu/ (LLVM) and codegen/cuda/ (CUDA C through NVRTC) implement it,
// with the same file names for the same stages.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "artifact_format.h"
#include "compiler/lower/program.h"
#include "compiler/support/status.h"

namespace kiln::codegen {

// What the backend stops after (`kiln compile --emit=...`).
enum class EmitKind { kArtifact, kLlvmIr, kObject };

struct TargetOptions {
  std::string cpu;       // LLVM CPU name; empty: this host
  std::string features;  // "+avx512f,-amx-tile"; added to the CPU's own
  int opt_level = 2;     // 0..3
  std::string cuda_arch;  // "sm_90" (the default when empty); --target cuda only
  // --target cuda only: the arithmetic of contractions (MatMul, Gemm, Conv):
  // "fp32" (exact, the default when empty), or tensor-core "tf32", "fp16",
  // "bf16" (inputs rounded to that type, products accumulated in fp32).
  std::string cuda_precision;
  // --target cpu only: the arithmetic of float32 contractions against
  // constant weights: "fp32" (exact, the default when empty) or "bf16"
  // (AVX512-BF16 dot products: weights and activations rounded to bfloat16,
  // products accumulated in fp32).
  std::string precision;
  // --target cpu only: block-sparse contraction kernels, "auto" (the default
  // when empty: where the weight's block density is under the measured
  // threshold), "off" or "always" (codegen/cpu/sparse_contraction.h).
  std::string sparse_kernels;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view target() const = 0;
  // Writes `program` to `path` as `kind`. `desc` carries the target-neutral
  // description (inputs, outputs, hashes, options); the backend adds its own
  // fields (CPU, features, entry point) before embedding it. The program is
  // the backend's: it may let the weights go once they are written.
  virtual Status emit(lower::Program program, artifact::ModelDesc desc, EmitKind kind, const std::string& path) = 0;
  // A one-line summary of the resolved target, e.g. "cpu sapphirerapids (+avx512f,...)".
  virtual std::string describeTarget() const = 0;
};

Expected<std::unique_ptr<Backend>> createCpuBackend(const TargetOptions& options);
// Defined only in builds with the CUDA toolkit (KILN_HAVE_CUDA_CODEGEN).
Expected<std::unique_ptr<Backend>> createCudaBackend(const TargetOptions& options);

}  // namespace kiln::codegen
