// TopK: the k largest (or smallest, largest=0) elements along `axis` and
// their int64 indices, in order. k is an attribute up to opset 9 and input 1
// from opset 10. It decides the output's size along the axis: a constant k
// gives static shapes; a k computed at run time is read into a dim slot by a
// kernel of shape steps, checked to lie in [0, n] (an error naming the node
// otherwise), and the output kernels iterate up to that slot. Equal values keep their input order (the lower index first), as
// ONNX asks; NaN counts as larger than every number (it comes first when
// largest=1, last when largest=0), so the order is total. With sorted=0 the
// order is left to the implementation: Kiln returns it sorted.
//
// The kernel ranks each element by counting the elements that beat it, then
// output position r takes the element of rank r:
//   rank[.., i, ..]    = sum_j beats(x[.., j, ..], j, x[.., i, ..], i)
//   indices[.., r, ..] = min_i (rank[.., i, ..] == r ? i : n)
//   values[.., r, ..]  = x[.., indices[.., r, ..], ..]
// which is O(n^2) per row along the axis.
#include <optional>
#include <string>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;

// k when known at compile time; nullopt when input 1 is computed at run time.
Expected<std::optional<int64_t>> topK(const NodeView& ctx) {
  if (ctx.opset() < 10) {
    if (!ctx.hasAttr("k")) return ctx.error("missing attribute 'k' (opset " + std::to_string(ctx.opset()) + ")");
    return std::optional<int64_t>{ctx.attrInt("k", 0)};
  }
  KILN_RETURN_IF_ERROR(rejectMovedAttributes(ctx, 10, {"k"}));
  if (!ctx.hasInput(1)) return ctx.error("K is missing (input 1)");
  const ir::Tensor* k = ctx.constantInput(1);
  if (!k) {
    const ir::TensorType& type = ctx.inputType(1);
    int64_t count = 1;
    if (type.shape)
      for (const ir::Dim& d : *type.shape) count = d.isKnown() && count >= 0 ? count * d.value : -1;
    if (type.dtype != DType::kInt64 || !type.shape || count != 1)
      return ctx.error("K must be a 1-element int64 tensor, got " + type.toString() + " (input 1)");
    return std::optional<int64_t>{};
  }
  if (k->dtype() != DType::kInt64 || k->elementCount() != 1)
    return ctx.error("K must be a 1-element int64 tensor, got " + k->type().toString() + " (input 1)");
  return std::optional<int64_t>{k->intAt(0)};
}

Status checkTopKAttributes(const NodeView& ctx) {
  for (const char* name : {"largest", "sorted"})
    if (ctx.opset() < 11 && ctx.hasAttr(name))
      return ctx.error(std::string("attribute '") + name + "' needs opset 11 (model has " +
                       std::to_string(ctx.opset()) + ")");
  return Status::ok();
}

Status inferTopK(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, ctx.opset() < 10 ? 1 : 2, ctx.opset() < 10 ? 1 : 2));
  KILN_RETURN_IF_ERROR(checkTopKAttributes(ctx));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", ctx.opset() < 11 ? DTypeClass::kFloat : DTypeClass::kNumeric));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, 0, "X", 1));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", -1), static_cast<int64_t>(x.size())));
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> k, topK(ctx));
  ir::Dim& along = x[static_cast<size_t>(axis)];
  if (!k) {
    along = along.isKnown() && along.value == 0 ? along : ir::Dim{};  // decided by the run
  } else {
    if (*k < 0) return ctx.error("k " + std::to_string(*k) + " must not be negative");
    if (along.isKnown() && *k > along.value)
      return ctx.error("k " + std::to_string(*k) + " exceeds X's " + std::to_string(along.value) +
                       " elements along axis " + std::to_string(axis));
    along = ir::Dim::known(*k);
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  ctx.setOutputType(1, {DType::kInt64, x});
  return Status::ok();
}

// Whether a (at index ia) comes before b (at index ib) in the output.
Expr beats(Expr a, Expr ia, Expr b, Expr ib, bool largest) {
  Expr ahead = largest ? a > b : a < b;
  Expr tie = kir::eq(a, b);
  if (ir::isFloat(a.dtype())) {
    Expr a_nan = kir::binary(kir::BinaryOp::kNe, a, a);
    Expr b_nan = kir::binary(kir::BinaryOp::kNe, b, b);
    Expr nan_ahead = largest ? a_nan && kir::unary(kir::UnaryOp::kNot, b_nan)
                             : b_nan && kir::unary(kir::UnaryOp::kNot, a_nan);
    ahead = ahead || nan_ahead;
    tie = tie || (a_nan && b_nan);
  }
  return ahead || (tie && ia < ib);
}

// A kernel of shape steps: k (input 1) into a slot, checked against the n
// elements along the axis, which becomes the outputs' dim along `axis`.
void readRunTimeK(LowerContext& ctx, size_t axis, int64_t n) {
  kir::KernelBuilder& kb = ctx.newKernel("k");
  LowerContext::Buffer k_input = ctx.input(1);
  int slot = ctx.newSlot();
  kb.setSlot(slot, indexAt(k_input, 0));
  Expr k = kir::slotValue(slot);
  kb.check(ctx.addCheck("K {$" + std::to_string(slot) + "} (input 1) is outside [0, " + std::to_string(n) +
                        "], the number of elements along axis " + std::to_string(axis)),
           (k >= Expr::index(0)) && (k <= Expr::index(n)));
  for (size_t out = 0; out < 2; ++out)
    if (ctx.hasOutput(out) && ctx.outputDimPending(out, axis)) ctx.setOutputDimSlot(out, axis, slot);
}

// Iteration variables over an output: `dims`, with the run-time k's slot as
// the extent along the axis when the outputs have one.
std::vector<kir::IterVar> outputAxes(LowerContext& ctx, kir::KernelBuilder& kb, const std::vector<int64_t>& dims,
                                     size_t axis, const std::string& prefix) {
  std::vector<kir::IterVar> axes = kb.vars(dims, prefix);
  for (size_t out = 0; out < 2; ++out)
    if (ctx.hasOutput(out) && ctx.outputDimSlot(out, axis) >= 0) axes[axis].extent_slot = ctx.outputDimSlot(out, axis);
  return axes;
}

Status lowerTopK(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", -1), static_cast<int64_t>(dims.size())));
  size_t a = static_cast<size_t>(axis);
  int64_t n = dims[a];
  bool largest = ctx.attrInt("largest", 1) != 0;
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> k, topK(ctx));
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("X has a run-time shape; Kiln needs its shape static (input 0)");
  if (!k) readRunTimeK(ctx, a, n);

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer rank = ctx.temp("rank", DType::kInt64, dims);
  // The outputs' dims, with n along the axis for a run-time k (an upper
  // bound: scratch indices are sized by it, the stages iterate up to k).
  std::vector<int64_t> out_dims = dims;
  if (k) out_dims[a] = *k;
  LowerContext::Buffer indices =
      ctx.hasOutput(1) ? ctx.output(1) : ctx.temp("indices", DType::kInt64, out_dims);

  std::vector<kir::IterVar> rank_axes = kb.vars(dims, "i");
  kir::IterVar j = kb.var("j", n);
  std::vector<Expr> at_i = asExprs(rank_axes);
  std::vector<Expr> at_j = at_i;
  at_j[a] = j;
  Expr wins = beats(toCompute(x.load(at_j)), j, toCompute(x.load(at_i)), at_i[a], largest);
  kb.compute(rank, rank_axes,
             kir::reduce(kir::ReduceOp::kSum, {j}, kir::select(wins, Expr::index(1), Expr::index(0))));

  std::vector<kir::IterVar> out_axes = outputAxes(ctx, kb, out_dims, a, "o");
  kir::IterVar i = kb.var("i", n);
  std::vector<Expr> row = asExprs(out_axes);
  row[a] = i;
  Expr found = kir::select(kir::eq(rank.load(row), out_axes[a]), Expr(i), Expr::index(n));
  // Ranks are a permutation of 0..n-1, so some i matches; the min keeps the index in range regardless.
  kb.compute(indices, out_axes, kir::min(kir::reduce(kir::ReduceOp::kMin, {i}, found), Expr::index(n - 1)));

  if (ctx.hasOutput(0)) {
    LowerContext::Buffer values = ctx.output(0);
    std::vector<kir::IterVar> value_axes = outputAxes(ctx, kb, out_dims, a, "v");
    std::vector<Expr> source = asExprs(value_axes);
    source[a] = indices.load(asExprs(value_axes));
    kb.compute(values, value_axes, x.load(source));
  }
  return Status::ok();
}

}  // namespace

void registerTopKOps(OpRegistry& registry) {
  registry.add(OpSchema{"",
                        "TopK",
                        {1, 10, 11},
                        {{"axis", Kind::kInt}, {"k", Kind::kInt}, {"largest", Kind::kInt}, {"sorted", Kind::kInt}},
                        inferTopK,
                        lowerTopK});
}

}  // namespace kiln::ops
