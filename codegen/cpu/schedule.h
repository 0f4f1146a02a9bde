// How a stage runs on the CPU: the schedule, chosen apart from the algorithm.
#pragma once

#include <cstdint>

#include "compiler/kir/kir.h"

namespace kiln::codegen::cpu {

struct StageSchedule {
  // The outermost `parallel_axes` axes are collapsed into one index range that
  // the runtime's thread pool splits; 0 runs the stage on the calling thread.
  int parallel_axes = 0;
};

StageSchedule scheduleStage(const kir::Stage& stage);

}  // namespace kiln::codegen::cpu
