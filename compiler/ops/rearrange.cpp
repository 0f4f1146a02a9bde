// Ops that move elements to positions given by run-time data: ReverseSequence
// and MaxUnpool. As in indexing.cpp, a data-given position is clamped into
// its buffer, so hostile lengths or indices never reach outside it.
#include <algorithm>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

// ---- ReverseSequence -------------------------------------------------------------
//   y[.., b, .., t, ..] = x[.., b, .., t < len[b] ? len[b] - 1 - t : t, ..]
// with len[b] clamped into [0, T].

struct SequenceAxes {
  size_t batch = 1;
  size_t time = 0;
};

Expected<SequenceAxes> sequenceAxes(const NodeView& ctx) {
  int64_t batch = ctx.attrInt("batch_axis", 1);
  int64_t time = ctx.attrInt("time_axis", 0);
  if ((batch != 0 && batch != 1) || (time != 0 && time != 1) || batch == time)
    return ctx.error("batch_axis " + std::to_string(batch) + " and time_axis " + std::to_string(time) +
                     " must be 0 and 1 in some order");
  return SequenceAxes{static_cast<size_t>(batch), static_cast<size_t>(time)};
}

Status inferReverseSequence(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", DTypeClass::kAnyKernel));
  if (ctx.inputType(1).dtype != ir::DType::kInt64)
    return ctx.error("sequence_lens has dtype " + std::string(ir::name(ctx.inputType(1).dtype)) +
                     ", expected int64 (input 1)");
  KILN_ASSIGN_OR_RETURN(SequenceAxes axes, sequenceAxes(ctx));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "input", 2));
  KILN_ASSIGN_OR_RETURN(ir::Shape lens, inputShapeOfRank(ctx, 1, "sequence_lens", 1));
  if (conflictingDims(lens[0], x[axes.batch]))
    return ctx.error("sequence_lens has " + ir::toString(lens) + " elements, expected the batch size " +
                     ir::toString({x[axes.batch]}) + " (input 1)");
  ctx.setOutputType(0, ctx.inputType(0));
  return Status::ok();
}

Status lowerReverseSequence(LowerContext& ctx) {
  KILN_ASSIGN_OR_RETURN(SequenceAxes seq, sequenceAxes(ctx));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer lens = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> at = asExprs(axes);
  int64_t steps = y.dim(seq.time);
  Expr len = kir::min(kir::max(lens(at[seq.batch]), Expr::index(0)), Expr::index(steps));
  Expr t = at[seq.time];
  at[seq.time] = kir::select(t < len, len - 1.0 - t, t);
  kb.compute(y, axes, x.load(at));
  return Status::ok();
}

// ---- MaxUnpool -------------------------------------------------------------------
// Y is zero but for X's values, each stored at the position its index names:
// the Indices output of a MaxPool, flat over the unpooled shape (N, C and
// (in - 1) * stride + kernel - pads per spatial dim). A larger output_shape
// keeps those coordinates and leaves the rest 0. Duplicates keep the last
// value; an index outside the shape is dropped.

Expected<std::vector<int64_t>> unpoolSpatialSizes(const NodeView& ctx, const ir::Shape& x) {
  size_t rank = x.size() - 2;
  std::vector<int64_t> kernel = ctx.attrInts("kernel_shape");
  if (kernel.size() != rank)
    return ctx.error("kernel_shape has " + std::to_string(kernel.size()) + " values, expected " +
                     std::to_string(rank) + " (one per spatial dim of X)");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, perDim(ctx, "strides", rank, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, perDim(ctx, "pads", 2 * rank, 0, 0));
  std::vector<int64_t> out;
  for (size_t i = 0; i < rank; ++i) {
    if (kernel[i] < 1) return ctx.error("kernel_shape values must be positive");
    int64_t in = x[2 + i].isKnown() ? x[2 + i].value : -1;
    out.push_back(in < 0 ? -1 : (in - 1) * strides[i] + kernel[i] - pads[i] - pads[rank + i]);
    if (in >= 0 && out.back() < 0) return ctx.error("the output of spatial dim " + std::to_string(i) + " is empty");
  }
  return out;
}

Status inferMaxUnpool(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kFloat));
  if (ctx.inputType(1).dtype != ir::DType::kInt64)
    return ctx.error("I has dtype " + std::string(ir::name(ctx.inputType(1).dtype)) + ", expected int64 (input 1)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShape(ctx, 1, "I"));
  bool same = indices.size() == x.size();
  for (size_t d = 0; same && d < x.size(); ++d) same = !conflictingDims(x[d], indices[d]);
  if (!same) return ctx.error("I " + ir::toString(indices) + " must have the shape of X " + ir::toString(x) + " (input 1)");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> spatial, unpoolSpatialSizes(ctx, x));
  ir::Shape out = {x[0], x[1]};
  if (ctx.hasInput(2) && !ctx.constantInput(2)) {  // read at run time: the rank is known, N and C too
    KILN_ASSIGN_OR_RETURN(ir::Shape given, inputShapeOfRank(ctx, 2, "output_shape", 1));
    if (ctx.inputType(2).dtype != ir::DType::kInt64 ||
        conflictingDims(given[0], ir::Dim::known(static_cast<int64_t>(x.size()))))
      return ctx.error("output_shape must be an int64 tensor of " + std::to_string(x.size()) + " values, got " +
                       ir::toString(given) + " (input 2)");
    out = unknownDims(x.size());
    out[0] = x[0];
    out[1] = x[1];
  } else if (ctx.hasInput(2)) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, constantInts(ctx, 2, "output_shape"));
    if (shape.size() != x.size())
      return ctx.error("output_shape has " + std::to_string(shape.size()) + " values, expected " +
                       std::to_string(x.size()) + " (input 2)");
    for (size_t i = 0; i < shape.size(); ++i) {
      bool fixed = i < 2 ? !conflictingDims(x[i], ir::Dim::known(shape[i])) : spatial[i - 2] < 0 || shape[i] >= spatial[i - 2];
      if (!fixed || shape[i] < 0)
        return ctx.error("output_shape " + ir::toString(ir::makeShape(shape)) + " is smaller than the unpooled shape (input 2)");
    }
    out = ir::makeShape(shape);
  } else {
    for (int64_t s : spatial) out.push_back(s < 0 ? ir::Dim{} : ir::Dim::known(s));
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerMaxUnpool(LowerContext& ctx) {
  std::vector<int64_t> x_dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> spatial, unpoolSpatialSizes(ctx, ir::makeShape(x_dims)));
  // Indices count positions in the unpooled shape; output_shape may be larger
  // (the extra rows and columns stay 0).
  std::vector<int64_t> unpooled = {x_dims[0], x_dims[1]};
  unpooled.insert(unpooled.end(), spatial.begin(), spatial.end());
  int64_t total = 1;
  for (int64_t d : unpooled) total *= d;
  bool run_time = ctx.hasInput(2) && !ctx.constantInput(2);
  std::vector<int> y_slots;  // output_shape read at run time: each dim's slot
  if (run_time) {
    if (ctx.isDynamicInput(0) || ctx.isDynamicInput(1))
      return ctx.unsupportedError("X and I must have static shapes when output_shape is computed at run time");
    ctx.newKernel("shape");
    y_slots = readIntoSlots(ctx, ctx.input(2, {static_cast<int64_t>(unpooled.size())}),
                            static_cast<int64_t>(unpooled.size()));
    Expr ok = Expr::constant(ir::DType::kBool, 1);
    for (size_t d = 0; d < unpooled.size(); ++d) {
      Expr size = kir::slotValue(y_slots[d]);
      ok = ok && (d < 2 ? kir::eq(size, Expr::index(unpooled[d])) : size >= Expr::index(unpooled[d]));
    }
    ctx.builder().check(ctx.addCheck("output_shape " + slotsShape(y_slots) + " is smaller than the unpooled shape [" +
                                     ir::toString(ir::makeShape(unpooled)) + "] or changes N or C (input 2)"),
                        ok);
    std::vector<Expr> sizes;
    for (int slot : y_slots) sizes.push_back(kir::slotValue(slot));
    y_slots = setOutputDims(ctx, 0, sizes);
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer indices = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> all = run_time ? ctx.outputVars(0, "c") : kb.vars(y.shape(), "c");
  kb.compute(y, all, kir::cast(y.dtype(), Expr::constant(computeDType(y.dtype()), 0)));
  const std::vector<int64_t>& y_dims = y.shape();
  if (total == 0 || (!run_time && std::count(y_dims.begin(), y_dims.end(), 0) > 0)) return Status::ok();
  // Y's dim d, and whether a coordinate lies inside it (the run-time sizes
  // are at least the unpooled ones, so every coordinate does; kept for safety).
  auto inside = [&](const Expr& c, size_t d) {
    return run_time ? c < kir::slotValue(y_slots[d]) && c >= Expr::index(0) : kir::inRange(c, y.dim(d));
  };
  auto last = [&](size_t d) {
    return run_time ? kir::slotValue(y_slots[d]) - Expr::index(1) : Expr::index(y.dim(d) - 1);
  };
  std::vector<kir::IterVar> axes = kb.vars(x.shape(), "u");
  std::vector<Expr> at = asExprs(axes);
  Expr raw = indices.load(at);
  Expr valid = kir::inRange(raw, total);
  Expr flat = kir::min(kir::max(raw, Expr::index(0)), Expr::index(total - 1));
  std::vector<Expr> position(unpooled.size());
  int64_t stride = 1;
  for (size_t d = unpooled.size(); d-- > 0;) {
    Expr coordinate = (flat / Expr::index(stride)) % Expr::index(unpooled[d]);
    valid = valid && inside(coordinate, d);
    position[d] = kir::min(coordinate, last(d));
    stride *= unpooled[d];
  }
  kb.computeAt(y, axes, position, kir::select(valid, x.load(at), y.load(position)));
  return Status::ok();
}

const std::vector<AttrSpec> kUnpoolAttrs = {
    {"kernel_shape", Kind::kInts, true}, {"pads", Kind::kInts}, {"strides", Kind::kInts}};

}  // namespace

void registerRearrangeOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "ReverseSequence", {10}, {{"batch_axis", Kind::kInt}, {"time_axis", Kind::kInt}},
                        inferReverseSequence, lowerReverseSequence});
  registry.add(OpSchema{"", "MaxUnpool", {9, 11}, kUnpoolAttrs, inferMaxUnpool, lowerMaxUnpool});
}

}  // namespace kiln::ops
