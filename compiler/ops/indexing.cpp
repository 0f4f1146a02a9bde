// Ops that read or write elements at positions given by run-time data:
// Gather, GatherElements, GatherND, ScatterElements (and its deprecated alias
// Scatter), ScatterND, OneHot.
//
// Indices are ordinary run-time inputs, so hostile data must never make a
// kernel touch memory outside a buffer. Every data-dependent index is wrapped
// once when negative (ONNX counts -d..-1 from the end) and then clamped into
// [0, d); a gather whose index was out of range reads 0 instead of the
// element, and a scatter whose index was out of range writes the element it
// would have hit back unchanged (see lowerScatter).
#include <algorithm>
#include <cmath>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;
using Buffer = LowerContext::Buffer;

// ---- Shared helpers ------------------------------------------------------------

// A run-time index into a dim of size d: `index` is always in [0, d) (for
// d > 0) so it is safe to load or store at; `valid` says whether the data's
// index, after wrapping negatives, really was in range.
struct CheckedIndex {
  Expr index;
  Expr valid;
};

CheckedIndex checkIndex(Expr raw, int64_t d) {
  Expr i = kir::cast(ir::DType::kInt64, std::move(raw));
  Expr wrapped = kir::select(i < Expr::index(0), i + Expr::index(d), i);
  Expr safe = kir::min(kir::max(wrapped, Expr::index(0)), Expr::index(std::max<int64_t>(d - 1, 0)));
  return {safe, kir::inRange(wrapped, d)};
}

Status expectIndexDType(const NodeView& ctx, size_t i) {
  if (!ctx.hasInput(i)) return ctx.error("indices are missing (input " + std::to_string(i) + ")");
  ir::DType dtype = ctx.inputType(i).dtype;
  if (dtype == ir::DType::kInt32 || dtype == ir::DType::kInt64) return Status::ok();
  return ctx.error("indices have dtype " + std::string(ir::name(dtype)) + ", expected int32 or int64 (input " +
                   std::to_string(i) + ")");
}

Expr zeroOf(ir::DType dtype) { return Expr::constant(dtype, 0); }

// The 'axis' attribute (default 0) normalized; inference has validated it.
size_t loweredAxis(const NodeView& ctx, size_t rank) {
  int64_t axis = ctx.attrInt("axis", 0);
  return static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
}

// ---- Gather --------------------------------------------------------------------
//   y[a.., j.., b..] = x[a.., indices[j..], b..]   (a.. are the dims before axis)

Status inferGather(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyData));
  KILN_RETURN_IF_ERROR(expectIndexDType(ctx, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape data, inputShapeOfMinRank(ctx, 0, "data", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShape(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(data.size())));
  size_t a = static_cast<size_t>(axis);
  ir::Shape out(data.begin(), data.begin() + a);
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.begin() + a + 1, data.end());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerGather(LowerContext& ctx) {
  size_t a = loweredAxis(ctx, ctx.inputDims(0).size());
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer indices = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  ir::DType dtype = computeDType(x.dtype());
  if (x.dim(a) == 0) {  // every index is out of range
    kb.compute(y, axes, zeroOf(dtype));
    return Status::ok();
  }
  size_t q = indices.rank();
  std::vector<Expr> out = asExprs(axes);
  CheckedIndex i = checkIndex(indices.load(std::vector<Expr>(out.begin() + a, out.begin() + a + q)), x.dim(a));
  std::vector<Expr> index(out.begin(), out.begin() + a);
  index.push_back(i.index);
  index.insert(index.end(), out.begin() + a + q, out.end());
  kb.compute(y, axes, kir::select(i.valid, toCompute(x.load(index)), zeroOf(dtype)));
  return Status::ok();
}

// ---- GatherElements ------------------------------------------------------------
//   y[p] = x[p with p[axis] replaced by indices[p]];  y has the indices' shape.

Status checkElementwiseIndices(const NodeView& ctx, const ir::Shape& data, const ir::Shape& indices, size_t axis) {
  if (indices.size() != data.size())
    return ctx.error("indices have rank " + std::to_string(indices.size()) + ", expected data's rank " +
                     std::to_string(data.size()) + " (input 1)");
  for (size_t d = 0; d < data.size(); ++d)
    if (d != axis && data[d].isKnown() && indices[d].isKnown() && indices[d].value > data[d].value)
      return ctx.error("indices " + ir::toString(indices) + " exceed data " + ir::toString(data) + " in dim " +
                       std::to_string(d));
  return Status::ok();
}

Status inferGatherElements(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_RETURN_IF_ERROR(expectIndexDType(ctx, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape data, inputShapeOfMinRank(ctx, 0, "data", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShape(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(data.size())));
  KILN_RETURN_IF_ERROR(checkElementwiseIndices(ctx, data, indices, static_cast<size_t>(axis)));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, indices});
  return Status::ok();
}

Status lowerGatherElements(LowerContext& ctx) {
  size_t a = loweredAxis(ctx, ctx.inputDims(0).size());
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer indices = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  ir::DType dtype = computeDType(x.dtype());
  if (x.dim(a) == 0) {
    kb.compute(y, axes, zeroOf(dtype));
    return Status::ok();
  }
  std::vector<Expr> index = asExprs(axes);
  CheckedIndex i = checkIndex(indices.load(index), x.dim(a));
  index[a] = i.index;
  kb.compute(y, axes, kir::select(i.valid, toCompute(x.load(index)), zeroOf(dtype)));
  return Status::ok();
}

// ---- GatherND ------------------------------------------------------------------
// With b = batch_dims and m = indices.shape[-1]:
//   y[j.., t..] = x[j[0..b), indices[j.., 0..m), t..]
// where j ranges over indices.shape[:-1] and t over data.shape[b+m:].

Status inferGatherND(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_RETURN_IF_ERROR(expectIndexDType(ctx, 1));
  if (ctx.inputType(1).dtype != ir::DType::kInt64) return ctx.error("indices must be int64 (input 1)");
  KILN_ASSIGN_OR_RETURN(ir::Shape data, inputShapeOfMinRank(ctx, 0, "data", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShapeOfMinRank(ctx, 1, "indices", 1));
  int64_t b = ctx.attrInt("batch_dims", 0);
  if (b < 0 || static_cast<size_t>(b) >= std::min(data.size(), indices.size()))
    return ctx.error("batch_dims " + std::to_string(b) + " must be less than both ranks");
  const ir::Dim& last = indices.back();
  if (!last.isKnown()) return ctx.unsupportedError("the last dim of indices (input 1) is not static");
  size_t m = static_cast<size_t>(last.value);
  if (m < 1 || static_cast<size_t>(b) + m > data.size())
    return ctx.error("indices' last dim " + std::to_string(m) + " plus batch_dims does not fit data of rank " +
                     std::to_string(data.size()));
  for (size_t d = 0; d < static_cast<size_t>(b); ++d)
    if (conflictingDims(data[d], indices[d]))
      return ctx.error("batch dim " + std::to_string(d) + " differs between data and indices");
  ir::Shape out(indices.begin(), indices.end() - 1);
  out.insert(out.end(), data.begin() + b + static_cast<int64_t>(m), data.end());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerGatherND(LowerContext& ctx) {
  size_t b = static_cast<size_t>(ctx.attrInt("batch_dims", 0));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer indices = ctx.input(1);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  size_t q = indices.rank();
  size_t m = static_cast<size_t>(indices.dim(q - 1));
  ir::DType dtype = computeDType(x.dtype());
  for (size_t d = b; d < b + m; ++d)
    if (x.dim(d) == 0) {  // every index is out of range
      kb.compute(y, axes, zeroOf(dtype));
      return Status::ok();
    }
  std::vector<Expr> out = asExprs(axes);
  std::vector<Expr> index(out.begin(), out.begin() + b);
  Expr valid = Expr::constant(ir::DType::kBool, 1);
  for (size_t k = 0; k < m; ++k) {
    std::vector<Expr> at(out.begin(), out.begin() + (q - 1));
    at.push_back(Expr::index(static_cast<int64_t>(k)));
    CheckedIndex i = checkIndex(indices.load(at), x.dim(b + k));
    index.push_back(i.index);
    valid = valid && i.valid;
  }
  index.insert(index.end(), out.begin() + (q - 1), out.end());
  kb.compute(y, axes, kir::select(valid, toCompute(x.load(index)), zeroOf(dtype)));
  return Status::ok();
}

// ---- ScatterElements, Scatter, ScatterND ---------------------------------------
// The output is a copy of data with updates written at run-time positions:
// stage 1 copies, stage 2 runs over the updates and stores each at the
// position its indices name. Stage 2 stores at data-dependent positions, so
// the CPU schedule keeps it serial (writesDistinctElements) and with
// duplicate indices later updates win, in order; a reduction combines with
// the value already there. An out-of-range index (after wrapping negatives)
// must not write outside the output, and stores are unconditional in the
// kernel IR, so it stores at the clamped position the value already there.

struct Reduction {
  std::string_view name;
  kir::BinaryOp op;
  int since;
};
constexpr Reduction kReductions[] = {{"add", kir::BinaryOp::kAdd, 16},
                                     {"mul", kir::BinaryOp::kMul, 16},
                                     {"max", kir::BinaryOp::kMax, 18},
                                     {"min", kir::BinaryOp::kMin, 18}};

// nullptr for 'none'.
Expected<const Reduction*> scatterReduction(const NodeView& ctx) {
  std::string name = ctx.attrString("reduction", "none");
  if (name == "none") return static_cast<const Reduction*>(nullptr);
  for (const Reduction& r : kReductions)
    if (r.name == name && ctx.opset() >= r.since) return &r;
  return ctx.error("unknown reduction '" + name + "' (opset " + std::to_string(ctx.opset()) + ")");
}

Status inferScatterCommon(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kAnyKernel));
  KILN_RETURN_IF_ERROR(expectIndexDType(ctx, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 2, "updates", DTypeClass::kAnyKernel));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "updates"));
  KILN_ASSIGN_OR_RETURN(const Reduction* reduction, scatterReduction(ctx));
  if (reduction && ctx.inputType(0).dtype == ir::DType::kBool)
    return ctx.unsupportedError("reduction '" + std::string(reduction->name) + "' on bool data is not supported");
  return Status::ok();
}

Status inferScatterElements(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(inferScatterCommon(ctx));
  KILN_ASSIGN_OR_RETURN(ir::Shape data, inputShapeOfMinRank(ctx, 0, "data", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShape(ctx, 1, "indices"));
  KILN_ASSIGN_OR_RETURN(ir::Shape updates, inputShape(ctx, 2, "updates"));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), static_cast<int64_t>(data.size())));
  KILN_RETURN_IF_ERROR(checkElementwiseIndices(ctx, data, indices, static_cast<size_t>(axis)));
  bool same = updates.size() == indices.size();
  for (size_t d = 0; same && d < updates.size(); ++d) same = !conflictingDims(updates[d], indices[d]);
  if (!same)
    return ctx.error("updates " + ir::toString(updates) + " must have the shape of indices " + ir::toString(indices) +
                     " (input 2)");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, data});
  return Status::ok();
}

Status inferScatterND(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(inferScatterCommon(ctx));
  if (ctx.inputType(1).dtype != ir::DType::kInt64) return ctx.error("indices must be int64 (input 1)");
  KILN_ASSIGN_OR_RETURN(ir::Shape data, inputShapeOfMinRank(ctx, 0, "data", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShapeOfMinRank(ctx, 1, "indices", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape updates, inputShape(ctx, 2, "updates"));
  if (!indices.back().isKnown()) return ctx.unsupportedError("the last dim of indices (input 1) is not static");
  size_t m = static_cast<size_t>(indices.back().value);
  if (m < 1 || m > data.size())
    return ctx.error("indices' last dim " + std::to_string(m) + " does not fit data of rank " +
                     std::to_string(data.size()));
  ir::Shape expected(indices.begin(), indices.end() - 1);
  expected.insert(expected.end(), data.begin() + static_cast<int64_t>(m), data.end());
  bool same = updates.size() == expected.size();
  for (size_t d = 0; same && d < updates.size(); ++d) same = !conflictingDims(updates[d], expected[d]);
  if (!same)
    return ctx.error("updates " + ir::toString(updates) + " must have shape " + ir::toString(expected) +
                     " (indices.shape[:-1] + data.shape[m:]) (input 2)");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, data});
  return Status::ok();
}

// Where one update goes: the position in the output and whether every
// data-given component of it was in range.
struct ScatterTarget {
  std::vector<Expr> position;
  Expr valid;
};

ScatterTarget elementsTarget(const NodeView& ctx, const Buffer& indices, const Buffer& y, const std::vector<Expr>& at) {
  size_t a = loweredAxis(ctx, y.rank());
  CheckedIndex i = checkIndex(indices.load(at), y.dim(a));
  std::vector<Expr> position = at;
  position[a] = i.index;
  return {position, i.valid};
}

ScatterTarget ndTarget(const Buffer& indices, const Buffer& y, const std::vector<Expr>& at) {
  size_t q = indices.rank();
  size_t m = static_cast<size_t>(indices.dim(q - 1));
  std::vector<Expr> position;
  Expr valid = Expr::constant(ir::DType::kBool, 1);
  for (size_t k = 0; k < m; ++k) {
    std::vector<Expr> where(at.begin(), at.begin() + (q - 1));
    where.push_back(Expr::index(static_cast<int64_t>(k)));
    CheckedIndex i = checkIndex(indices.load(where), y.dim(k));
    position.push_back(i.index);
    valid = valid && i.valid;
  }
  position.insert(position.end(), at.begin() + (q - 1), at.end());
  return {position, valid};
}

using TargetFn = ScatterTarget (*)(const NodeView&, const Buffer&, const Buffer&, const std::vector<Expr>&);

Status lowerScatter(LowerContext& ctx, TargetFn target) {
  KILN_ASSIGN_OR_RETURN(const Reduction* reduction, scatterReduction(ctx));
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer data = ctx.input(0);
  Buffer indices = ctx.input(1);
  Buffer updates = ctx.input(2);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> copy_axes = kb.vars(y.shape(), "c");
  kb.compute(y, copy_axes, data.load(asExprs(copy_axes)));
  if (std::count(y.shape().begin(), y.shape().end(), int64_t{0}) > 0) return Status::ok();  // nowhere to write
  std::vector<kir::IterVar> axes = kb.vars(updates.shape(), "u");
  std::vector<Expr> at = asExprs(axes);
  ScatterTarget where = target(ctx, indices, y, at);
  Expr current = toCompute(y.load(where.position));
  Expr update = toCompute(updates.load(at));
  if (reduction) update = kir::binary(reduction->op, current, update);
  kb.computeAt(y, axes, where.position, kir::select(where.valid, update, current));
  return Status::ok();
}

Status lowerScatterElements(LowerContext& ctx) { return lowerScatter(ctx, elementsTarget); }
Status lowerScatterND(LowerContext& ctx) {
  return lowerScatter(ctx, [](const NodeView&, const Buffer& indices, const Buffer& y, const std::vector<Expr>& at) {
    return ndTarget(indices, y, at);
  });
}

// ---- OneHot --------------------------------------------------------------------
//   y[.., k, ..] = values[indices[..] == k ? 1 : 0], k on `axis`, with
// negative indices counting from depth; any other out-of-range index gives a
// row of off values. depth is the new dim's size: a constant, or read at
// run time into a dim slot (float depths truncated, as the spec says).

Expected<int64_t> oneHotDepth(const NodeView& ctx) {
  const ir::Tensor* depth = ctx.constantInput(1);
  if (!depth) return ctx.unsupportedError("depth (input 1) is computed at run time; Kiln needs it to be a constant");
  if (depth->elementCount() != 1) return ctx.error("depth must hold one element (input 1)");
  if (ir::isFloat(depth->dtype()) && !(std::abs(depth->floatAt(0)) < 0x1p63))
    return ctx.error("depth " + std::to_string(depth->floatAt(0)) + " is not a size (input 1)");
  int64_t d = ir::isFloat(depth->dtype()) ? static_cast<int64_t>(depth->floatAt(0)) : depth->intAt(0);
  if (d < 1) return ctx.error("depth must be positive, got " + std::to_string(d) + " (input 1)");
  return d;
}

Status inferOneHot(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "indices", DTypeClass::kNumeric));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 2, "values", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape indices, inputShape(ctx, 0, "indices"));
  KILN_ASSIGN_OR_RETURN(ir::Shape values, inputShapeOfRank(ctx, 2, "values", 1));
  if (values[0].isKnown() && values[0].value != 2)
    return ctx.error("values must hold [off_value, on_value], got shape " + ir::toString(values) + " (input 2)");
  ir::Dim depth_dim;  // unknown when read at run time
  if (ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(int64_t depth, oneHotDepth(ctx));
    depth_dim = ir::Dim::known(depth);
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalizeAxis(ctx, ctx.attrInt("axis", -1), static_cast<int64_t>(indices.size() + 1)));
  ir::Shape out = indices;
  out.insert(out.begin() + axis, depth_dim);
  ctx.setOutputType(0, {ctx.inputType(2).dtype, out});
  return Status::ok();
}

Status lowerOneHot(LowerContext& ctx) {
  int64_t axis = ctx.attrInt("axis", -1);
  size_t rank = ctx.outputDims(0).size();
  size_t a = static_cast<size_t>(axis < 0 ? axis + static_cast<int64_t>(rank) : axis);
  Expr depth;
  if (ctx.constantInput(1)) {
    KILN_ASSIGN_OR_RETURN(int64_t d, oneHotDepth(ctx));
    depth = Expr::index(d);
  } else {
    if (ctx.isDynamicInput(0)) return ctx.unsupportedError("indices (input 0) have a run-time shape as well");
    ctx.newKernel("shape");
    Buffer given = ctx.input(1, {1});
    std::vector<Expr> sizes;
    for (int64_t d : ctx.inputDims(0)) sizes.push_back(Expr::index(d));
    sizes.insert(sizes.begin() + static_cast<int64_t>(a), kir::cast(ir::DType::kInt64, given(Expr::index(0))));
    std::vector<int> slots = setOutputDims(ctx, 0, sizes);
    depth = kir::slotValue(slots[a]);
    ctx.builder().check(ctx.addCheck("depth (input 1) is {$" + std::to_string(slots[a]) + "}, it must be positive"),
                        depth > Expr::index(0));
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer indices = ctx.input(0);
  Buffer values = ctx.input(2);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  std::vector<Expr> at = asExprs(axes);
  Expr k = at[a];
  at.erase(at.begin() + static_cast<int64_t>(a));
  // Float indices are truncated toward zero (a saturating cast) before wrapping.
  Expr i = kir::cast(ir::DType::kInt64, indices.load(at));
  i = kir::select(i < Expr::index(0), i + depth, i);
  Expr hot = eq(i, k);
  kb.compute(y, axes, kir::select(hot, values(Expr::index(1)), values(Expr::index(0))));
  return Status::ok();
}

const std::vector<AttrSpec> kScatterAttributes = {{"axis", Kind::kInt}, {"reduction", Kind::kString}};

}  // namespace

void registerIndexingOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Gather", {1, 11, 13}, {{"axis", Kind::kInt}}, inferGather, lowerGather});
  registry.add(
      OpSchema{"", "GatherElements", {11, 13}, {{"axis", Kind::kInt}}, inferGatherElements, lowerGatherElements});
  registry.add(OpSchema{"", "GatherND", {11, 12, 13}, {{"batch_dims", Kind::kInt}}, inferGatherND, lowerGatherND});
  registry.add(OpSchema{
      "", "ScatterElements", {11, 13, 16, 18}, kScatterAttributes, inferScatterElements, lowerScatterElements});
  // Scatter (9, deprecated in 11) is ScatterElements without reductions.
  registry.add(OpSchema{"", "Scatter", {9, 11}, {{"axis", Kind::kInt}}, inferScatterElements, lowerScatterElements});
  registry.add(
      OpSchema{"", "ScatterND", {11, 13, 16, 18}, {{"reduction", Kind::kString}}, inferScatterND, lowerScatterND});
  registry.add(OpSchema{"", "OneHot", {9, 11}, {{"axis", Kind::kInt}}, inferOneHot, lowerOneHot});
}

}  // namespace kiln::ops
