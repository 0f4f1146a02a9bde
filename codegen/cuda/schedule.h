// How a stage runs on the GPU: the schedule, chosen apart from the algorithm
// (the kernel IR says what each element is; this says which thread computes it).
#pragma once

#include <cstdint>

#include "compiler/kir/kir.h"

namespace kiln::codegen::cuda {

struct LaunchSchedule {
  // The outermost `parallel_axes` axes are collapsed into one flat index of
  // `threads` points, one GPU thread each (a grid-stride loop when the grid is
  // capped); the remaining axes and every reduction loop run inside the
  // thread. 0: one thread runs the whole stage.
  int parallel_axes = 0;
  int64_t threads = 1;
  uint32_t block = 1;
  uint32_t grid = 1;
  // The flat index fits in 32 bits (cheaper division when splitting it back
  // into axes).
  bool index32 = true;
  // A warp per output element instead of a thread: the 32 lanes split the
  // stage's one reduction `warp_reduce` (a row's sum, max, mean...) and
  // combine by shuffles; lane 0 stores. `threads` counts lanes.
  const kir::ExprNode* warp_reduce = nullptr;
};

LaunchSchedule scheduleStage(const kir::Stage& stage);

// Iteration points of a stage; 0 when an axis is empty (the launch is skipped).
int64_t stagePoints(const kir::Stage& stage);

}  // namespace kiln::codegen::cuda
