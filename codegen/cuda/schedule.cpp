#include "codegen/cuda/schedule.h"

#include <algorithm>
#include <vector>

namespace kiln::codegen::cuda {
namespace {

constexpr int64_t kBlockThreads = 256;
// Past this many blocks a grid-stride loop covers the rest: 16 waves of full
// blocks on a 132-SM H100 is far beyond what keeps every SM busy.
constexpr int64_t kMaxBlocks = 1 << 16;

// True when every iteration writes its own element (each store index is a
// distinct axis variable). Only such stages get a thread per point: a scatter
// (indices from data) may write one element from many iterations, and runs on
// one thread so that later updates win as the algorithm says.
bool writesDistinctElements(const kir::Stage& stage) {
  std::vector<int> seen;
  for (const kir::Expr& index : stage.store_index) {
    if (index->kind != kir::ExprNode::Kind::kVar) return false;
    if (std::find(seen.begin(), seen.end(), index->var_id) != seen.end()) return false;
    seen.push_back(index->var_id);
  }
  return seen.size() == stage.axes.size();
}

}  // namespace

int64_t stagePoints(const kir::Stage& stage) {
  int64_t points = 1;
  for (const kir::IterVar& v : stage.axes) points *= v.extent;
  return points;
}

LaunchSchedule scheduleStage(const kir::Stage& stage) {
  LaunchSchedule schedule;
  if (!writesDistinctElements(stage) || stage.axes.empty()) return schedule;
  // A thread per output element: every axis is parallel.
  schedule.parallel_axes = static_cast<int>(stage.axes.size());
  schedule.threads = stagePoints(stage);
  // Whole warps; an empty stage (0 points) keeps one warp and is never launched.
  int64_t block = std::clamp<int64_t>((schedule.threads + 31) / 32 * 32, 32, kBlockThreads);
  schedule.block = static_cast<uint32_t>(block);
  schedule.grid = static_cast<uint32_t>(std::clamp<int64_t>((schedule.threads + block - 1) / block, 1, kMaxBlocks));
  schedule.index32 = schedule.threads < (int64_t{1} << 31) - kBlockThreads * kMaxBlocks;
  return schedule;
}

}  // namespace kiln::codegen::cuda
