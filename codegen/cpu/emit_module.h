// Program -> LLVM module: one function per kernel stage, the kernels, the
// small weights as read-only globals, the model description in its own
// section, and the entry point that the runtime calls; and the weights blob
// that sealArtifact appends (the large weights, in kernel layout).
#pragma once

#include <memory>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "artifact_format.h"
#include "codegen/cpu/contraction.h"
#include "codegen/cpu/sparse_contraction.h"
#include "codegen/cpu/weight_blob.h"
#include "compiler/lower/program.h"

namespace kiln::codegen::cpu {

inline constexpr const char* kEntrySymbol = "kiln_model_run";

struct EmittedModule {
  std::unique_ptr<llvm::Module> module;
  WeightBlob weights;
};

// `desc` is written into the module with its weights_bytes set. Weights of
// `blob_min_bytes` or more are written into `weights` first, and the
// program's copies of them let go before the code is emitted; with
// UINT64_MAX every weight is in the module (--emit llvm and obj, which have
// no blob to go with them). A failure to write the blob is the returned
// blob's status().
EmittedModule emitModule(llvm::LLVMContext& context, lower::Program program, artifact::ModelDesc desc,
                         WeightBlob weights, const ContractionIsa& isa = {}, SparseMode sparse_mode = SparseMode::kAuto,
                         uint64_t blob_min_bytes = kBlobMinBytes);

}  // namespace kiln::codegen::cpu
