// LLVM module -> optimized ELF object in memory.
#pragma once

#include <string>
#include <vector>

#include <llvm/IR/Module.h>
#include <llvm/Target/TargetMachine.h>

#include "codegen/cpu/weight_blob.h"
#include "compiler/support/status.h"

namespace kiln::codegen::cpu {

// Runs LLVM's -O<level> pipeline on `module` for `machine`.
Status optimizeModule(llvm::Module& module, llvm::TargetMachine& machine, int opt_level);
Expected<std::vector<char>> emitObject(llvm::Module& module, llvm::TargetMachine& machine);

// Links one object into a shared object at `path` with LLD, in-process.
Status linkSharedObject(const std::vector<char>& object, const std::string& path);

// Appends the blob `weights` (nullptr: none) to the linked artifact at
// `path`, at a multiple of artifact::kWeightsAlignment, and writes the
// checksum of the whole file into its description section, whose
// weights_bytes must be the blob's size.
Status sealArtifact(const std::string& path, const WeightBlob* weights = nullptr);

}  // namespace kiln::codegen::cpu
