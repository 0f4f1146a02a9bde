// Reductions: the ten Reduce* ops, ArgMax/ArgMin and CumSum.
//
// A Reduce* op is one stage over the statistics' shape (the input's dims with
// the reduced ones set to 1); the output is written through that view, which
// has the same elements whether keepdims removes the 1s or not. Each op is a
// per-element map, a combining ReduceOp and a finishing step (ReduceDef).
#include <algorithm>
#include <cmath>
#include <limits>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/axes.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
using kir::IterVar;
using kir::ReduceOp;

// ---- Reduce* -------------------------------------------------------------------
// axes is an attribute up to opset 12 (ReduceSum) / 17 (the others) and an
// optional input after; it must then be a compile-time constant, since it
// decides the output's shape. No axes means all of them, unless
// noop_with_empty_axes=1 (from the same opset): then nothing is reduced and
// each output element is the op applied to its one input element (ReduceSum
// of x is x, ReduceSumSquare x*x, ReduceL2 |x|).
//
// Over an empty set of values each op gives its identity: sum 0, prod 1, max
// -inf (the lowest integer), min +inf, and so LogSum -inf, Mean NaN (0 for
// integers, which have no NaN).

struct ReduceDef {
  const char* name;
  std::vector<int> versions;
  int axes_input_since;
  int bool_since;   // 0: bool never accepted
  bool float_math;  // integers are computed in float64 (sqrt, log, exp)
  ReduceOp op;
  Expr (*element)(Expr x);
  Expr (*finish)(Expr acc, int64_t count);
};

Expr identity(Expr x) { return x; }
Expr square(Expr x) { return x * x; }
Expr absolute(Expr x) { return kir::abs(std::move(x)); }
Expr keep(Expr acc, int64_t) { return acc; }
Expr mean(Expr acc, int64_t count) {
  if (count == 0 && !ir::isFloat(acc.dtype())) return Expr::constant(acc.dtype(), 0);
  return acc / static_cast<double>(count);
}
Expr squareRoot(Expr acc, int64_t) { return kir::sqrt(std::move(acc)); }
Expr logarithm(Expr acc, int64_t) { return kir::log(std::move(acc)); }

const std::vector<int> kReduceVersions = {1, 11, 13, 18};
const std::vector<int> kReduceMaxVersions = {1, 11, 12, 13, 18, 20};
const ReduceDef kReduceDefs[] = {
    {"ReduceSum", {1, 11, 13}, 13, 0, false, ReduceOp::kSum, identity, keep},
    {"ReduceMean", kReduceVersions, 18, 0, false, ReduceOp::kSum, identity, mean},
    {"ReduceMax", kReduceMaxVersions, 18, 20, false, ReduceOp::kMax, identity, keep},
    {"ReduceMin", kReduceMaxVersions, 18, 20, false, ReduceOp::kMin, identity, keep},
    {"ReduceProd", kReduceVersions, 18, 0, false, ReduceOp::kProd, identity, keep},
    {"ReduceL1", kReduceVersions, 18, 0, false, ReduceOp::kSum, absolute, keep},
    {"ReduceL2", kReduceVersions, 18, 0, true, ReduceOp::kSum, square, squareRoot},
    {"ReduceLogSum", kReduceVersions, 18, 0, true, ReduceOp::kSum, identity, logarithm},
    // The stable form (subtract the row max, see lowerReduceLogSumExp) uses
    // only `float_math` and `axes_input_since` from here.
    {"ReduceLogSumExp", kReduceVersions, 18, 0, true, ReduceOp::kSum, identity, keep},
    {"ReduceSumSquare", kReduceVersions, 18, 0, false, ReduceOp::kSum, square, keep},
};

// A tensor whose static shape has a 0 dim: its value is known (empty) even
// when it is computed at run time, as for an axes input of shape [0].
bool hasNoElements(const ir::TensorType& type) {
  if (!type.shape) return false;
  for (const ir::Dim& d : *type.shape)
    if (d.isKnown() && d.value == 0) return true;
  return false;
}

// Which dims of a rank-`rank` input the node reduces.
Expected<std::vector<bool>> reducedDims(const NodeView& ctx, const ReduceDef& def, size_t rank) {
  std::vector<int64_t> axes;
  bool axes_is_input = ctx.opset() >= def.axes_input_since;
  if (axes_is_input) {
    if (ctx.hasAttr("axes"))
      return ctx.error("axes is input 1 since opset " + std::to_string(def.axes_input_since) + ", not an attribute");
    if (ctx.numInputs() > 1 && ctx.hasInput(1) && !hasNoElements(ctx.inputType(1))) {
      const ir::Tensor* value = ctx.constantInput(1);
      if (!value)
        return ctx.unsupportedError(
            "axes (input 1) is computed at run time; Kiln reads it at run time only for ReduceSum, ReduceMax, "
            "ReduceMin, ReduceProd, ReduceL1 and ReduceSumSquare");
      if (ir::isFloat(value->dtype()) || value->dims().size() > 1)
        return ctx.error("axes must be a 1-D int64 tensor, got " + value->type().toString() + " (input 1)");
      axes = value->toInts();
    }
  } else {
    axes = ctx.attrInts("axes");
  }
  bool noop = axes_is_input && ctx.attrInt("noop_with_empty_axes", 0) != 0;
  if (axes.empty()) return std::vector<bool>(rank, !noop);
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : axes) {
    KILN_ASSIGN_OR_RETURN(int64_t a, normalizeAxis(ctx, axis, static_cast<int64_t>(rank), "axes entry"));
    if (reduced[static_cast<size_t>(a)]) return ctx.error("axes lists dim " + std::to_string(a) + " twice");
    reduced[static_cast<size_t>(a)] = true;
  }
  return reduced;
}

Status checkReduceInputs(const NodeView& ctx, const ReduceDef& def) {
  bool axes_is_input = ctx.opset() >= def.axes_input_since;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, axes_is_input ? 2 : 1));
  if (def.bool_since != 0 && ctx.opset() >= def.bool_since && ctx.inputType(0).dtype == DType::kBool)
    return Status::ok();
  return expectDType(ctx, 0, "data", DTypeClass::kNumeric);
}

// Axes computed at run time (a 1-D integer tensor of known length k > 0),
// for the ops whose result does not depend on the reduced count. The rank is
// static (the input's, less k without keepdims); which dims are reduced is
// read into dim slots.
bool runTimeAxes(const NodeView& ctx, const ReduceDef& def) {
  return ctx.opset() >= def.axes_input_since && ctx.numInputs() > 1 && ctx.hasInput(1) && !ctx.constantInput(1) &&
         !hasNoElements(ctx.inputType(1)) && def.finish == keep && std::string_view(def.name) != "ReduceLogSumExp";
}

Expected<int64_t> runTimeAxesCount(const NodeView& ctx, size_t rank) {
  KILN_ASSIGN_OR_RETURN(ir::Shape axes, inputShapeOfRank(ctx, 1, "axes", 1));
  if (!axes[0].isKnown() || ir::isFloat(ctx.inputType(1).dtype) || static_cast<size_t>(axes[0].value) > rank)
    return ctx.error("axes (input 1) must be a 1-D integer tensor of known length at most the rank " +
                     std::to_string(rank));
  return axes[0].value;
}

DType reduceComputeDType(DType in, bool float_math);

Status lowerRunTimeAxes(LowerContext& ctx, const ReduceDef& def) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("data (input 0) has a run-time shape as well");
  std::vector<int64_t> dims = ctx.inputDims(0);
  auto rank = static_cast<int64_t>(dims.size());
  KILN_ASSIGN_OR_RETURN(int64_t k, runTimeAxesCount(ctx, dims.size()));
  bool keepdims = ctx.attrInt("keepdims", 1) != 0;
  ctx.newKernel("axes");
  std::vector<int> axes = readIntoSlots(ctx, ctx.input(1), k);
  std::vector<Expr> reduced;  // per input dim
  Expr valid = Expr::constant(DType::kBool, 1), picked = Expr::index(0);
  for (int64_t d = 0; d < rank; ++d) {
    Expr hit = Expr::constant(DType::kBool, 0);
    for (int s : axes) {
      Expr a = kir::slotValue(s);
      hit = hit || kir::eq(kir::select(a < Expr::index(0), a + Expr::index(rank), a), Expr::index(d));
    }
    reduced.push_back(hit);
    picked = picked + kir::select(hit, Expr::index(1), Expr::index(0));
  }
  for (int s : axes) valid = valid && (kir::slotValue(s) >= Expr::index(-rank)) && (kir::slotValue(s) < Expr::index(rank));
  ctx.builder().check(ctx.addCheck("axes " + slotsShape(axes) + " (input 1) are out of range or repeated for rank " +
                                   std::to_string(rank)),
                      valid && kir::eq(picked, Expr::index(k)));
  // Per input dim: the extent of its reduction (the dim, or 1), in a slot;
  // its position among the output dims (keepdims=0) likewise.
  std::vector<int> extent(dims.size()), position(dims.size());
  Expr before = Expr::index(0);
  for (size_t d = 0; d < dims.size(); ++d) {
    extent[d] = ctx.newSlot();
    ctx.builder().setSlot(extent[d], kir::select(reduced[d], Expr::index(dims[d]), Expr::index(1)));
    position[d] = ctx.newSlot();
    ctx.builder().setSlot(position[d], Expr::index(static_cast<int64_t>(d)) - before);
    before = before + kir::select(reduced[d], Expr::index(1), Expr::index(0));
  }
  std::vector<Expr> sizes;
  for (int64_t o = 0; o < (keepdims ? rank : rank - k); ++o) {
    if (keepdims) {
      sizes.push_back(kir::select(reduced[static_cast<size_t>(o)], Expr::index(1), Expr::index(dims[static_cast<size_t>(o)])));
      continue;
    }
    Expr size = Expr::index(0);
    for (size_t d = 0; d < dims.size(); ++d)
      size = size + kir::select(kir::unary(kir::UnaryOp::kNot, reduced[d]) &&
                                    kir::eq(kir::slotValue(position[d]), Expr::index(o)),
                                Expr::index(dims[d]), Expr::index(0));
    sizes.push_back(size);
  }
  setOutputDims(ctx, 0, sizes);
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  DType dtype = reduceComputeDType(x.dtype(), def.float_math);
  std::vector<IterVar> out = ctx.outputVars(0);
  std::vector<IterVar> row;
  std::vector<Expr> index;
  for (size_t d = 0; d < dims.size(); ++d) {
    IterVar r = kb.var("r" + std::to_string(d), dims[d]);
    r.extent_slot = extent[d];
    row.push_back(r);
    Expr kept = keepdims ? Expr(out[d]) : Expr::index(0);
    if (!keepdims)
      for (size_t o = 0; o < out.size(); ++o)
        kept = kir::select(kir::eq(kir::slotValue(position[d]), Expr::index(static_cast<int64_t>(o))), Expr(out[o]), kept);
    index.push_back(kir::select(reduced[d], Expr(r), kept));
  }
  Expr element = def.element(kir::cast(dtype, x.load(index)));
  kb.compute(y, out, kir::cast(y.dtype(), kir::reduce(def.op, row, element)));
  return Status::ok();
}

Status inferReduce(InferContext& ctx, const ReduceDef& def) {
  KILN_RETURN_IF_ERROR(checkReduceInputs(ctx, def));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  if (runTimeAxes(ctx, def)) {
    KILN_ASSIGN_OR_RETURN(int64_t k, runTimeAxesCount(ctx, in.size()));
    bool keepdims = ctx.attrInt("keepdims", 1) != 0;
    ctx.setOutputType(0, {ctx.inputType(0).dtype, ir::Shape(keepdims ? in.size() : in.size() - static_cast<size_t>(k), ir::Dim{})});
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<bool> reduced, reducedDims(ctx, def, in.size()));
  bool keepdims = ctx.attrInt("keepdims", 1) != 0;
  ir::Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!reduced[i])
      out.push_back(in[i]);
    else if (keepdims)
      out.push_back(ir::Dim::known(1));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

DType reduceComputeDType(DType in, bool float_math) {
  if (in == DType::kBool) return DType::kUInt8;  // max/min of bools: any / all
  if (float_math && !ir::isFloat(in)) return DType::kFloat64;
  return computeDType(in);
}

// The stable log-sum-exp: m + log(sum(exp(x - m))) with m the row max. An
// infinite m (a row of -inf, an empty row, a +inf) is replaced by 0 so that
// x - m is never inf - inf; the plain formula is exact there.
Status lowerReduceLogSumExp(LowerContext& ctx, const std::vector<bool>& reduced) {
  RowShape shape = rowShape(ctx.inputDims(0), reduced);
  const std::vector<int64_t>& stat = shape.stat;
  const std::vector<int64_t>& row = shape.row;
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0, stat);
  DType dtype = reduceComputeDType(x.dtype(), true);
  LowerContext::Buffer row_max = ctx.temp("row_max", dtype, stat);

  std::vector<IterVar> max_axes = kb.vars(stat, "m");
  std::vector<IterVar> max_row = kb.vars(row, "r");
  Expr in_row = kir::cast(dtype, x.load(rowIndex(reduced, max_axes, max_row)));
  Expr m = reduceOver(ReduceOp::kMax, max_row, in_row);
  Expr infinite = kir::eq(kir::abs(m), Expr::constant(dtype, std::numeric_limits<double>::infinity()));
  kb.compute(row_max, max_axes, kir::select(infinite, Expr::constant(dtype, 0), m));

  std::vector<IterVar> axes = kb.vars(stat, "s");
  std::vector<IterVar> sum_row = kb.vars(row, "r");
  Expr shift = row_max.load(asExprs(axes));
  Expr shifted = kir::cast(dtype, x.load(rowIndex(reduced, axes, sum_row))) - shift;
  Expr sum = reduceOver(ReduceOp::kSum, sum_row, kir::exp(shifted));
  kb.compute(y, axes, kir::cast(y.dtype(), kir::log(sum) + shift));
  return Status::ok();
}

Status lowerReduce(LowerContext& ctx, const ReduceDef& def) {
  if (runTimeAxes(ctx, def)) return lowerRunTimeAxes(ctx, def);
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::vector<bool> reduced, reducedDims(ctx, def, dims.size()));
  if (std::string_view(def.name) == "ReduceLogSumExp") return lowerReduceLogSumExp(ctx, reduced);
  auto [stat, row, count] = rowShape(dims, reduced);

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0, stat);
  DType dtype = reduceComputeDType(x.dtype(), def.float_math);
  std::vector<IterVar> axes = kb.vars(stat);
  std::vector<IterVar> row_vars = kb.vars(row, "r");
  Expr element = def.element(kir::cast(dtype, x.load(rowIndex(reduced, axes, row_vars))));
  Expr value = def.finish(reduceOver(def.op, row_vars, element), count);
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

std::vector<AttrSpec> reduceAttributes() {
  return {{"axes", Kind::kInts}, {"keepdims", Kind::kInt}, {"noop_with_empty_axes", Kind::kInt}};
}

// ---- ArgMax / ArgMin -----------------------------------------------------------
// The index (int64) of the first extreme value along `axis`, or the last with
// select_last_index=1 (opset 12). A NaN counts as the extreme, like numpy:
// the max/min reduction propagates it and a NaN matches a NaN here.

Status inferArg(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kNumeric));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShape(ctx, 0, "data"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(in.size())));
  ir::Dim& reduced = in[static_cast<size_t>(axis)];
  if (reduced.isKnown() && reduced.value == 0)
    return ctx.error("data " + ir::toString(in) + " has no elements along axis " + std::to_string(axis) +
                     ", so there is no extreme to take the index of");
  if (ctx.attrInt("keepdims", 1) != 0)
    reduced = ir::Dim::known(1);
  else
    in.erase(in.begin() + axis);
  ctx.setOutputType(0, {DType::kInt64, in});
  return Status::ok();
}

Status lowerArg(LowerContext& ctx, ReduceOp extreme) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(dims.size())));
  std::vector<bool> reduced(dims.size(), false);
  reduced[static_cast<size_t>(axis)] = true;
  std::vector<int64_t> stat = rowShape(dims, reduced).stat;
  int64_t extent = dims[static_cast<size_t>(axis)];
  bool last = ctx.attrInt("select_last_index", 0) != 0;

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0, stat);
  DType dtype = computeDType(x.dtype());
  LowerContext::Buffer best = ctx.temp("best", dtype, stat);

  std::vector<IterVar> best_axes = kb.vars(stat, "b");
  IterVar best_r = kb.var("r", extent);
  kb.compute(best, best_axes,
             kir::reduce(extreme, {best_r}, kir::cast(dtype, x.load(rowIndex(reduced, best_axes, {best_r})))));

  std::vector<IterVar> axes = kb.vars(stat);
  IterVar r = kb.var("r", extent);
  Expr v = kir::cast(dtype, x.load(rowIndex(reduced, axes, {r})));
  Expr b = best.load(asExprs(axes));
  Expr match = kir::eq(v, b);
  if (ir::isFloat(dtype))
    match = match || (kir::binary(kir::BinaryOp::kNe, v, v) && kir::binary(kir::BinaryOp::kNe, b, b));
  // Non-matching positions give a value the min (max) ignores; some position
  // always matches, so the result is in [0, extent).
  Expr index = last ? kir::reduce(ReduceOp::kMax, {r}, kir::select(match, Expr(r), Expr::index(-1)))
                    : kir::reduce(ReduceOp::kMin, {r}, kir::select(match, Expr(r), Expr::index(extent)));
  kb.compute(y, axes, index);
  return Status::ok();
}

std::vector<AttrSpec> argAttributes() {
  return {{"axis", Kind::kInt}, {"keepdims", Kind::kInt}, {"select_last_index", Kind::kInt}};
}

// ---- CumSum --------------------------------------------------------------------
//   y[.., i, ..] = sum of x[.., j, ..] over j <= i (j < i with exclusive=1;
//   j >= i / j > i with reverse=1).
// The axis (input 1, a scalar or 1-element tensor) picks the kernel's
// structure: a constant one gives one definition; one computed at run time
// gives a definition per possible axis, the run picking one by the axis's
// value (held in a dim slot, range-checked first).

Expected<int64_t> cumSumAxis(const NodeView& ctx, int64_t rank) {
  const ir::Tensor* axis = ctx.constantInput(1);
  if (!axis) return ctx.unsupportedError("axis (input 1) is computed at run time; Kiln needs it to be a constant");
  if (ir::isFloat(axis->dtype()) || axis->elementCount() != 1)
    return ctx.error("axis must be an int32/int64 scalar, got " + axis->type().toString() + " (input 1)");
  return normalizeAxis(ctx, axis->intAt(0), rank);
}

Status inferCumSum(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "x", DTypeClass::kNumeric));
  KILN_ASSIGN_OR_RETURN(ir::Shape in, inputShapeOfMinRank(ctx, 0, "x", 1));
  if (!ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(ir::Shape axis, inputShape(ctx, 1, "axis"));
    if (ir::isFloat(ctx.inputType(1).dtype) || axis.size() > 1 || (axis.size() == 1 && axis[0].value != 1))
      return ctx.error("axis must be an int32/int64 scalar (input 1)");
    ctx.setOutputType(0, ctx.inputType(0));
    return Status::ok();
  }
  Expected<int64_t> axis = cumSumAxis(ctx, static_cast<int64_t>(in.size()));
  if (!axis) return axis.status();
  ctx.setOutputType(0, ctx.inputType(0));
  return Status::ok();
}

// The running sum along axis `a` at the element `axes`.
Expr cumSumAlong(kir::KernelBuilder& kb, const LowerContext& ctx, const LowerContext::Buffer& x,
                 const std::vector<IterVar>& axes, size_t a) {
  bool exclusive = ctx.attrInt("exclusive", 0) != 0;
  bool reverse = ctx.attrInt("reverse", 0) != 0;
  DType dtype = computeDType(x.dtype());
  IterVar j = kb.var("j" + std::to_string(a), x.dim(a));
  Expr i = axes[a];
  Expr included = reverse ? (exclusive ? Expr(j) > i : Expr(j) >= i) : (exclusive ? Expr(j) < i : Expr(j) <= i);
  std::vector<Expr> index = asExprs(axes);
  index[a] = j;
  Expr term = kir::select(included, kir::cast(dtype, x.load(index)), Expr::constant(dtype, 0));
  return kir::reduce(ReduceOp::kSum, {j}, term);
}

Status lowerCumSum(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  auto rank = static_cast<int64_t>(dims.size());
  Expr axis_value;
  if (!ctx.constantInput(1)) {
    ctx.newKernel("axis");
    LowerContext::Buffer given = ctx.input(1, {1});
    int raw = ctx.newSlot(), normalized = ctx.newSlot();
    ctx.builder().setSlot(raw, kir::cast(DType::kInt64, given(Expr::index(0))));
    Expr a = kir::slotValue(raw);
    ctx.builder().setSlot(normalized, kir::select(a < Expr::index(0), a + Expr::index(rank), a));
    ctx.builder().check(ctx.addCheck("axis {$" + std::to_string(raw) + "} (input 1) is out of range for rank " +
                                     std::to_string(rank)),
                        (a >= Expr::index(-rank)) && (a < Expr::index(rank)));
    axis_value = kir::slotValue(normalized);
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<IterVar> axes = kb.vars(dims);
  Expr value;
  if (axis_value.valid()) {
    for (size_t a = dims.size(); a-- > 0;) {
      Expr along = cumSumAlong(kb, ctx, x, axes, a);
      value = value.valid() ? kir::select(kir::eq(axis_value, Expr::index(static_cast<int64_t>(a))), along, value) : along;
    }
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t axis, cumSumAxis(ctx, rank));
    value = cumSumAlong(kb, ctx, x, axes, static_cast<size_t>(axis));
  }
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerReduceOps(OpRegistry& registry) {
  for (const ReduceDef& def : kReduceDefs) {
    registry.add(OpSchema{"", def.name, def.versions, reduceAttributes(),
                          [&def](InferContext& ctx) { return inferReduce(ctx, def); },
                          [&def](LowerContext& ctx) { return lowerReduce(ctx, def); }});
  }
  registry.add(OpSchema{"", "ArgMax", {1, 11, 12, 13}, argAttributes(), inferArg, [](LowerContext& ctx) {
                          return lowerArg(ctx, ReduceOp::kMax);
                        }});
  registry.add(OpSchema{"", "ArgMin", {1, 11, 12, 13}, argAttributes(), inferArg, [](LowerContext& ctx) {
                          return lowerArg(ctx, ReduceOp::kMin);
                        }});
  registry.add(
      OpSchema{"", "CumSum", {11, 14}, {{"exclusive", Kind::kInt}, {"reverse", Kind::kInt}}, inferCumSum, lowerCumSum});
}

}  // namespace kiln::ops
