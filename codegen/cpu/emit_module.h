// Program -> LLVM module: one function per kernel stage, the kernels, the
// weights as read-only globals, the model description in its own section, and
// the entry point that the runtime calls.
#pragma once

#include <memory>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "artifact_format.h"
#include "codegen/cpu/contraction.h"
#include "codegen/cpu/sparse_contraction.h"
#include "compiler/lower/program.h"

namespace kiln::codegen::cpu {

inline constexpr const char* kEntrySymbol = "kiln_model_run";

std::unique_ptr<llvm::Module> emitModule(llvm::LLVMContext& context, const lower::Program& program,
                                         const std::vector<uint8_t>& description, const ContractionIsa& isa = {},
                                         SparseMode sparse_mode = SparseMode::kAuto);

}  // namespace kiln::codegen::cpu
