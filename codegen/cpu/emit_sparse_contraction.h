// LLVM IR for a block-sparse contraction stage (sparse_contraction.h says
// what it computes and how the weights are laid out).
#pragma once

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include "codegen/cpu/emit_expr.h"
#include "codegen/cpu/sparse_contraction.h"

namespace kiln::codegen::cpu {

// The plan's three arrays as private read-only globals of `module`.
struct SparseWeights {
  llvm::Value* starts = nullptr;
  llvm::Value* k_index = nullptr;
  llvm::Value* values = nullptr;
};
SparseWeights emitSparseWeights(llvm::Module& module, const SparsePlan& plan, int id);

// Row tiles of the stage: ceil(rows / SparsePlan::rows).
int64_t sparseRowTiles(const kir::Stage& stage, const ContractionPlan& dense, const SparsePlan& sparse);

// Independent tasks of the stage: every outer-axis point times every column
// block, times every row tile when SparsePlan::rows_outer. Tasks write
// disjoint output elements.
int64_t sparseContractionTasks(const kir::Stage& stage, const ContractionPlan& dense, const SparsePlan& sparse);

// Emits, at b's insertion point, the tasks [begin, end) of the stage.
void emitSparseContraction(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage,
                           const ContractionPlan& dense, const SparsePlan& sparse, const SparseWeights& weights,
                           llvm::Value* begin, llvm::Value* end);

}  // namespace kiln::codegen::cpu
