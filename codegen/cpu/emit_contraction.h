// LLVM IR for a contraction stage (contraction.h says what it computes).
#pragma once

#include <llvm/IR/IRBuilder.h>

#include "codegen/cpu/contraction.h"
#include "codegen/cpu/emit_expr.h"

namespace kiln::codegen::cpu {

// Independent tasks of the stage: every outer-axis point times every block of
// the vector axis. Tasks write disjoint output elements.
int64_t contractionTasks(const kir::Stage& stage, const ContractionPlan& plan);

// Emits, at b's insertion point, the tasks [begin, end) of the stage. `panels`
// is the packed weights global when plan.packed.
void emitContraction(llvm::IRBuilder<>& b, ExprEmitter& emitter, const kir::Stage& stage, const ContractionPlan& plan,
                     llvm::Value* panels, llvm::Value* begin, llvm::Value* end);

}  // namespace kiln::codegen::cpu
