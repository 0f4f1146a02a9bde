// How a stage runs on the CPU: the schedule, chosen apart from the algorithm.
#pragma once

#include <cstdint>

#include "compiler/kir/kir.h"

namespace kiln::codegen::cpu {

struct StageSchedule {
  // The outermost `parallel_axes` axes are collapsed into one index range that
  // the runtime's thread pool splits; 0 runs the stage on the calling thread.
  int parallel_axes = 0;
  // When set, the stage's value holds this one reduction, and its reduce
  // loops run outside a loop over the stage's innermost axis, with one
  // accumulator per element of that axis. The operand reads contiguously
  // along the innermost axis (MaxPool over NHWC, a sum over a non-last
  // axis), so the inner loop vectorizes; per-element reductions would each
  // walk memory with a stride instead. Each accumulator combines its terms
  // in the reduce loops' order.
  const kir::ExprNode* reduce_outside_inner_axis = nullptr;
};

StageSchedule scheduleStage(const kir::Stage& stage);

}  // namespace kiln::codegen::cpu
