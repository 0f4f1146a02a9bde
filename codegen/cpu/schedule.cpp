#include "codegen/cpu/schedule.h"

#include <algorithm>
#include <vector>

namespace kiln::codegen::cpu {
namespace {

// Below this much work per stage a thread hand-off costs more than it saves
// (a wake-up is a few microseconds; this is ~10 us of scalar work).
constexpr int64_t kMinParallelWork = 1 << 15;
// Enough outer iterations to balance 2..8 threads.
constexpr int64_t kMinOuterIterations = 16;

int64_t exprCost(const kir::Expr& e) {
  const kir::ExprNode& n = *e;
  if (n.kind == kir::ExprNode::Kind::kReduce) {
    int64_t trip = 1;
    for (const kir::IterVar& v : n.reduce_vars) trip *= v.extent;
    return trip * (1 + exprCost(n.operands[0]));
  }
  int64_t cost = 1;
  for (const kir::Expr& op : n.operands) cost += exprCost(op);
  return cost;
}

}  // namespace

StageSchedule scheduleStage(const kir::Stage& stage) {
  StageSchedule schedule;
  if (!kir::writesDistinctElements(stage)) return schedule;
  int64_t points = 1;
  for (const kir::IterVar& v : stage.axes) points *= v.extent;
  if (points * exprCost(stage.value) < kMinParallelWork) return schedule;
  if (stage.axes.size() == 1) {
    schedule.parallel_axes = stage.axes[0].extent >= 2 ? 1 : 0;
    return schedule;
  }
  int64_t outer = 1;
  for (const kir::IterVar& v : stage.axes) {
    // Stop before the last axis so the innermost loop stays whole for vectorizing.
    if (outer >= kMinOuterIterations || schedule.parallel_axes + 1 >= static_cast<int>(stage.axes.size())) break;
    outer *= v.extent;
    ++schedule.parallel_axes;
  }
  if (outer < 2) schedule.parallel_axes = 0;
  return schedule;
}

}  // namespace kiln::codegen::cpu
