#include "codegen/cuda/schedule.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace kiln::codegen::cuda {
namespace {

constexpr int64_t kBlockThreads = 256;
// Past this many blocks a grid-stride loop covers the rest: 16 waves of full
// blocks on a 132-SM H100 is far beyond what keeps every SM busy.
constexpr int64_t kMaxBlocks = 1 << 16;
// A reduction at least this long is split across a warp's lanes: a thread
// looping over it alone leaves too few threads to hide memory latency (128
// rows of LayerNorm statistics are 128 threads).
constexpr int64_t kMinWarpReduction = 64;

void collectReduces(const kir::Expr& e, bool under_select, std::vector<std::pair<const kir::ExprNode*, bool>>& out) {
  const kir::ExprNode& n = *e;
  if (n.kind == kir::ExprNode::Kind::kReduce) {
    out.emplace_back(&n, under_select);
    return;
  }
  for (size_t i = 0; i < n.operands.size(); ++i)
    collectReduces(n.operands[i], under_select || (n.kind == kir::ExprNode::Kind::kSelect && i > 0), out);
}

// The stage's one float32 reduction, when it is long enough to share across
// a warp and always evaluated (not inside a select arm, which may guard its
// loads).
const kir::ExprNode* warpReduction(const kir::Stage& stage) {
  std::vector<std::pair<const kir::ExprNode*, bool>> reduces;
  collectReduces(stage.value, false, reduces);
  if (reduces.empty()) return nullptr;
  const kir::ExprNode* first = reduces[0].first;
  for (const auto& [node, under_select] : reduces)
    if (node != first || under_select) return nullptr;
  if (first->dtype != ir::DType::kFloat32) return nullptr;
  int64_t length = 1;
  for (const kir::IterVar& v : first->reduce_vars) length *= v.extent;
  return length >= kMinWarpReduction ? first : nullptr;
}

}  // namespace

int64_t stagePoints(const kir::Stage& stage) {
  int64_t points = 1;
  for (const kir::IterVar& v : stage.axes) points *= v.extent;
  return points;
}

LaunchSchedule scheduleStage(const kir::Stage& stage) {
  LaunchSchedule schedule;
  if (!kir::writesDistinctElements(stage) || stage.axes.empty()) return schedule;
  // A thread per output element: every axis is parallel.
  schedule.parallel_axes = static_cast<int>(stage.axes.size());
  schedule.threads = stagePoints(stage);
  if ((schedule.warp_reduce = warpReduction(stage))) schedule.threads *= 32;
  // Whole warps; an empty stage (0 points) keeps one warp and is never launched.
  int64_t block = std::clamp<int64_t>((schedule.threads + 31) / 32 * 32, 32, kBlockThreads);
  schedule.block = static_cast<uint32_t>(block);
  schedule.grid = static_cast<uint32_t>(std::clamp<int64_t>((schedule.threads + block - 1) / block, 1, kMaxBlocks));
  schedule.index32 = schedule.threads < (int64_t{1} << 31) - kBlockThreads * kMaxBlocks;
  return schedule;
}

}  // namespace kiln::codegen::cuda
