#include "codegen/cpu/schedule.h"

#include <algorithm>
#include <vector>

#include "compiler/kir/affine.h"

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

// Accumulators of one inner axis kept on the stage function's stack.
constexpr int64_t kMaxInnerAccumulators = 4096;

// Each distinct reduce node once: a fused activation that reads its input
// several times (GELU, SiLU) shares one sum.
void collectReduces(const kir::Expr& e, std::vector<const kir::ExprNode*>& out) {
  if (!e.valid()) return;
  if (e->kind == kir::ExprNode::Kind::kReduce) {
    if (std::find(out.begin(), out.end(), &*e) != out.end()) return;
    out.push_back(&*e);
  }
  for (const kir::Expr& op : e->operands) collectReduces(op, out);
}

// Whether every load in `e` that depends on `var` reads it as its last index,
// unscaled (var or var + something free of var), and at least one does.
bool loadsContiguousIn(const kir::Expr& e, int var, bool& any) {
  if (e->kind == kir::ExprNode::Kind::kLoad) {
    for (size_t i = 0; i + 1 < e->operands.size(); ++i)
      if (kir::dependsOn(e->operands[i], var)) return false;
    if (e->operands.empty() || !kir::dependsOn(e->operands.back(), var)) return true;
    const kir::Expr& last = e->operands.back();
    bool plain = last->kind == kir::ExprNode::Kind::kVar;
    bool offset = last->kind == kir::ExprNode::Kind::kBinary &&
                  static_cast<kir::BinaryOp>(last->op) == kir::BinaryOp::kAdd &&
                  ((kir::isVar(last->operands[0], var) && !kir::dependsOn(last->operands[1], var)) ||
                   (kir::isVar(last->operands[1], var) && !kir::dependsOn(last->operands[0], var)));
    any = any || plain || offset;
    return plain || offset;
  }
  for (const kir::Expr& op : e->operands)
    if (!loadsContiguousIn(op, var, any)) return false;
  return true;
}

// The stage's one reduction, when moving its loops outside the innermost
// axis makes its reads contiguous (see StageSchedule).
const kir::ExprNode* reduceToMoveOut(const kir::Stage& stage) {
  if (stage.axes.size() < 2) return nullptr;
  const kir::IterVar& inner = stage.axes.back();
  if (inner.extent < 4 || inner.extent > kMaxInnerAccumulators) return nullptr;
  std::vector<const kir::ExprNode*> reduces;
  collectReduces(stage.value, reduces);
  if (reduces.size() != 1) return nullptr;  // none, several, or nested
  const kir::ExprNode& r = *reduces[0];
  if (static_cast<kir::ReduceOp>(r.op) == kir::ReduceOp::kCount || r.dtype == kir::DType::kString ||
      r.dtype == kir::DType::kBool)
    return nullptr;
  for (const kir::IterVar& v : r.reduce_vars)
    if (v.extent_slot >= 0) return nullptr;
  bool any = false;
  if (!loadsContiguousIn(r.operands[0], inner.id, any) || !any) return nullptr;
  return &r;
}

}  // namespace

StageSchedule scheduleStage(const kir::Stage& stage) {
  StageSchedule schedule;
  // Threads split the stage only where no two iterations write one element:
  // distinct axis variables, or affine indices that keep them apart (a
  // Concat's input copied into its slice of the output).
  if (!kir::storesDistinctAffine(stage)) return schedule;
  schedule.reduce_outside_inner_axis = reduceToMoveOut(stage);
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
