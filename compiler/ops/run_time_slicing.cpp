// Slice with starts/ends/axes/steps computed at run time (any of them not a
// constant): a kernel of shape steps reads them into dim slots, clamps them
// as the spec says and computes each output dim's start, step and count;
// the element kernel reads x[start + i * step] per dim. The data's shape
// must be static.
#include <limits>

#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using kir::Expr;
using Buffer = LowerContext::Buffer;

Expr clampExpr(Expr v, Expr lo, Expr hi) { return kir::min(kir::max(std::move(v), std::move(lo)), std::move(hi)); }

}  // namespace

Status inferRunTimeSlice(InferContext& ctx, size_t rank) {
  for (size_t i = 1; i < 5 && i < ctx.numInputs(); ++i) {
    if (!ctx.hasInput(i)) continue;
    KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfRank(ctx, i, "starts", 1));
    if (!shape[0].isKnown() || ir::isFloat(ctx.inputType(i).dtype))
      return ctx.unsupportedError("input " + std::to_string(i) + " is computed at run time and is not a 1-D "
                                  "integer tensor of known length");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, unknownDims(rank)});
  return Status::ok();
}

Status lowerRunTimeSlice(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("data (input 0) has a run-time shape as well");
  std::vector<int64_t> dims = ctx.inputDims(0);
  auto rank = static_cast<int64_t>(dims.size());
  int64_t n = ctx.inputDims(1)[0];
  for (size_t i = 2; i < 5 && i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && ctx.inputDims(i)[0] != n)
      return ctx.error("starts, ends, axes and steps have different lengths");
  ctx.newKernel("shape");
  std::vector<int> starts = readIntoSlots(ctx, ctx.input(1), n);
  std::vector<int> ends = readIntoSlots(ctx, ctx.input(2), n);
  std::vector<Expr> axes, steps;
  if (ctx.numInputs() > 3 && ctx.hasInput(3)) {
    for (int s : readIntoSlots(ctx, ctx.input(3), n)) {
      Expr a = kir::slotValue(s);
      axes.push_back(kir::select(a < Expr::index(0), a + Expr::index(rank), a));
    }
  } else {
    for (int64_t k = 0; k < n; ++k) axes.push_back(Expr::index(k));
  }
  if (ctx.numInputs() > 4 && ctx.hasInput(4)) {
    for (int s : readIntoSlots(ctx, ctx.input(4), n)) steps.push_back(kir::slotValue(s));
  } else {
    steps.assign(static_cast<size_t>(n), Expr::index(1));
  }
  Expr valid = Expr::constant(ir::DType::kBool, 1);
  for (int64_t k = 0; k < n; ++k) {
    const Expr& a = axes[static_cast<size_t>(k)];
    valid = valid && (a >= Expr::index(0)) && (a < Expr::index(rank)) &&
            kir::unary(kir::UnaryOp::kNot, kir::eq(steps[static_cast<size_t>(k)], Expr::index(0)));
    for (int64_t j = 0; j < k; ++j) valid = valid && kir::unary(kir::UnaryOp::kNot, kir::eq(a, axes[static_cast<size_t>(j)]));
  }
  ctx.builder().check(ctx.addCheck("axes are out of range or repeated, or a step is 0 (inputs 3 and 4)"), valid);
  std::vector<Expr> counts;
  std::vector<int> start_slots, step_slots;
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = dims[static_cast<size_t>(d)];
    Expr D = Expr::index(size);
    Expr start = Expr::index(0), end = D, step = Expr::index(1);  // an axis not sliced
    for (int64_t k = n; k-- > 0;) {
      Expr hit = kir::eq(axes[static_cast<size_t>(k)], Expr::index(d));
      start = kir::select(hit, kir::slotValue(starts[static_cast<size_t>(k)]), start);
      end = kir::select(hit, kir::slotValue(ends[static_cast<size_t>(k)]), end);
      step = kir::select(hit, steps[static_cast<size_t>(k)], step);
    }
    start = kir::select(start < Expr::index(0), start + D, start);
    end = kir::select(end < Expr::index(0), kir::max(end, Expr::index(lowest + size)) + D, end);
    Expr forward = step > Expr::index(0);
    start = kir::select(forward, clampExpr(start, Expr::index(0), D), clampExpr(start, Expr::index(0), D - Expr::index(1)));
    end = kir::select(forward, clampExpr(end, Expr::index(0), D), clampExpr(end, Expr::index(-1), D - Expr::index(1)));
    Expr span = kir::select(forward, end - start, start - end);
    Expr magnitude = kir::select(forward, step, Expr::index(0) - step);
    counts.push_back(kir::select(span > Expr::index(0), (span - Expr::index(1)) / magnitude + Expr::index(1), Expr::index(0)));
    start_slots.push_back(ctx.newSlot());
    ctx.builder().setSlot(start_slots.back(), start);
    step_slots.push_back(ctx.newSlot());
    ctx.builder().setSlot(step_slots.back(), step);
  }
  setOutputDims(ctx, 0, counts);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> vars = ctx.outputVars(0);
  std::vector<Expr> index;
  for (size_t d = 0; d < vars.size(); ++d)
    index.push_back(kir::slotValue(start_slots[d]) + Expr(vars[d]) * kir::slotValue(step_slots[d]));
  kb.compute(y, vars, x.load(index));
  return Status::ok();
}

}  // namespace kiln::ops
