// How a stage runs on the GPU: the schedule, chosen apart from the algorithm
// (the kernel IR says what each element is; this says which thread computes it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

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
  // Each thread computes `vector` consecutive points of the innermost axis
  // (an unrolled loop) and stores them with one 8- or 16-byte store, so a
  // warp writes whole contiguous segments: a stage without reductions whose
  // store index puts those points side by side at a multiple of `vector`
  // elements (every buffer starts 64-byte aligned). The per-point index
  // arithmetic (splitting the flat index, a convolution packing's padding
  // guards) is shared too. `threads` counts threads, points / vector.
  int64_t vector = 1;
};

// `element_bytes(i)`: the size of an element of parameter i, and of the
// 16-bit copy its stores also write, if any (0: none).
LaunchSchedule scheduleStage(const kir::Kernel& kernel, const kir::Stage& stage,
                             const std::function<std::pair<int, int>(int)>& element_bytes);

// Consecutive stages of one kernel that run as one launch with a warp per
// row: one or more row reductions (LayerNorm's mean and inverse deviation,
// Softmax's max and sum; each a warp-split float32 reduction storing one
// value per row) followed by an elementwise stage over the same rows plus
// inner axes that reads those values only at its own row. The warp computes
// each stage's row in turn (the lanes stride over the inner axes of the
// last), so a row's statistics never leave the SM between stages and the
// launches drop from one per stage to one.
struct RowGroup {
  size_t first = 0, count = 0;  // stages [first, first + count)
  int64_t rows = 0;             // a warp each, or a block each when `block_per_row`
  std::vector<int> row_axes;    // per stage: its leading axes that index the row (all, for a reduction)
  uint32_t block = 256, grid = 1;
  // Too few rows to fill the GPU with a warp each (LayerNorm over 128
  // tokens is 128 warps on 132 SMs): a block per row, its warps combining
  // through shared memory.
  bool block_per_row = false;
};

// The row group starting at stage `first`, when there is one; `aliases(i, j)`
// says whether parameters i and j are bound to the same buffer.
std::optional<RowGroup> planRowGroup(const kir::Kernel& kernel, size_t first,
                                     const std::function<bool(int, int)>& aliases);

// Iteration points of a stage; 0 when an axis is empty (the launch is skipped).
int64_t stagePoints(const kir::Stage& stage);

}  // namespace kiln::codegen::cuda
