// Unique: the distinct elements of X (or distinct slices along `axis`), with
// the index of each one's first occurrence, the inverse map from X to the
// output and the number of occurrences. sorted=1 (the default) orders the
// output ascending, slices lexicographically; sorted=0 keeps the order of
// first occurrence. NaNs compare equal to each other and after every number
// (numpy's unique), so the order is total.
//
// The items compared are the m slices along the axis (or the n elements), each
// a row of s values. Two kernels (see "Data-dependent sizes" in
// run_time_shapes.h), each computing:
//   diff[i, j] = first t where item i and item j differ, or s   (when s > 1)
//   rep[i]     = the first j with item j == item i  (i is new when rep[i] == i)
// the first kernel stores the count of new items in the outputs' dim slot;
// the second adds each new item's output position
//   sorted:   pos[i] = number of new items j with item j < item i
//   unsorted: pos[i] = number of new items before i (a serial prefix count)
// scatters new items to src[pos[i]] = i, and writes
//   Y[u] = item src[u], indices[u] = src[u], inverse[i] = pos[rep[i]],
//   counts[u] = number of i with rep[i] == src[u].
// Work is O(m^2 s) per run, like TopK's ranking.
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
using Buffer = LowerContext::Buffer;

Expected<std::optional<int64_t>> uniqueAxis(const NodeView& ctx, int64_t rank) {
  if (!ctx.hasAttr("axis")) return std::optional<int64_t>{};
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 0), rank));
  return std::optional<int64_t>{axis};
}

Status inferUnique(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", DTypeClass::kAnyKernel));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, uniqueAxis(ctx, static_cast<int64_t>(x.size())));
  ir::Shape y = axis ? x : ir::Shape(1, ir::Dim{});
  if (axis) y[static_cast<size_t>(*axis)] = ir::Dim{};
  ir::Dim items = axis ? x[static_cast<size_t>(*axis)] : productDim(x, 0, x.size());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, y});
  ctx.setOutputType(1, {DType::kInt64, ir::Shape{ir::Dim{}}});
  ctx.setOutputType(2, {DType::kInt64, ir::Shape{items}});
  ctx.setOutputType(3, {DType::kInt64, ir::Shape{ir::Dim{}}});
  return Status::ok();
}

// X as [outer, m, inner]: m items along the axis, each s = outer * inner values.
struct Items {
  int64_t outer = 1, m = 0, inner = 1;
  int64_t s() const { return outer * inner; }
  std::vector<int64_t> view() const { return {outer, m, inner}; }
};

Items itemsOf(const std::vector<int64_t>& dims, std::optional<int64_t> axis) {
  Items items;
  if (!axis) {
    items.m = 1;
    for (int64_t d : dims) items.m *= d;
    return items;
  }
  auto a = static_cast<size_t>(*axis);
  for (size_t d = 0; d < dims.size(); ++d) {
    if (d < a) items.outer *= dims[d];
    if (d > a) items.inner *= dims[d];
  }
  items.m = dims[a];
  return items;
}

Expr boolean(bool v) { return Expr::constant(DType::kBool, v ? 1 : 0); }
Expr isNan(const Expr& v) { return kir::binary(kir::BinaryOp::kNe, v, v); }

// Value equality where NaN equals NaN.
Expr sameValue(const Expr& a, const Expr& b) {
  if (!ir::isFloat(a.dtype())) return kir::eq(a, b);
  return kir::eq(a, b) || (isNan(a) && isNan(b));
}

// a before b in ascending order, NaN last.
Expr valueBefore(const Expr& a, const Expr& b) {
  if (!ir::isFloat(a.dtype())) return a < b;
  return (a < b) || (kir::unary(kir::UnaryOp::kNot, isNan(a)) && isNan(b));
}

// The comparisons of items for one kernel: the loads of X and, for items of
// more than one value, the diff matrix.
class ItemOrder {
 public:
  ItemOrder(LowerContext& ctx, const Items& items) : items_(items) {
    kir::KernelBuilder& kb = ctx.builder();
    x_ = ctx.input(0, items.view());
    if (items.s() <= 1) return;
    diff_ = ctx.temp("diff", DType::kInt64, {items.m, items.m});
    std::vector<kir::IterVar> ij = kb.vars({items.m, items.m}, "d");
    kir::IterVar t = kb.var("t", items.s());
    Expr first = kir::select(sameValue(value(ij[0], t), value(ij[1], t)), Expr::index(items.s()), Expr(t));
    kb.compute(diff_, ij, kir::reduce(kir::ReduceOp::kMin, {t}, first));
  }

  Expr same(const Expr& i, const Expr& j) const {
    if (items_.s() == 0) return boolean(true);
    if (items_.s() == 1) return sameValue(value(i, Expr::index(0)), value(j, Expr::index(0)));
    return kir::eq(diff_(i, j), Expr::index(items_.s()));
  }

  // Item i before item j (lexicographically for slices).
  Expr before(const Expr& i, const Expr& j) const {
    if (items_.s() == 0) return boolean(false);
    if (items_.s() == 1) return valueBefore(value(i, Expr::index(0)), value(j, Expr::index(0)));
    Expr d = diff_(i, j);
    Expr t = kir::min(d, Expr::index(items_.s() - 1));
    return (d < Expr::index(items_.s())) && valueBefore(value(i, t), value(j, t));
  }

 private:
  Expr value(const Expr& item, const Expr& t) const {
    Expr v = toCompute(x_.load({t / Expr::index(items_.inner), item, t % Expr::index(items_.inner)}));
    return v.dtype() == DType::kBool ? kir::cast(DType::kInt32, v) : v;
  }

  Items items_;
  Buffer x_;
  Buffer diff_;
};

// rep[i]: the first item equal to item i.
Buffer firstOccurrences(LowerContext& ctx, const Items& items, const ItemOrder& order) {
  kir::KernelBuilder& kb = ctx.builder();
  Buffer rep = ctx.temp("rep", DType::kInt64, {items.m});
  kir::IterVar i = kb.var("r", items.m);
  kir::IterVar j = kb.var("rj", items.m);
  Expr earlier = (Expr(j) < Expr(i)) && order.same(j, i);
  kb.compute(rep, {i}, kir::reduce(kir::ReduceOp::kMin, {j}, kir::select(earlier, Expr(j), Expr(i))));
  return rep;
}

Status lowerUnique(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("X has a run-time shape; Kiln needs its shape static (input 0)");
  std::vector<int64_t> dims = ctx.inputDims(0);
  KILN_ASSIGN_OR_RETURN(std::optional<int64_t> axis, uniqueAxis(ctx, static_cast<int64_t>(dims.size())));
  bool sorted = ctx.attrInt("sorted", 1) != 0;
  Items items = itemsOf(dims, axis);
  size_t a = axis ? static_cast<size_t>(*axis) : 0;

  // Kernel 1: the number of distinct items.
  ctx.newKernel("count");
  {
    ItemOrder order(ctx, items);
    Buffer rep = firstOccurrences(ctx, items, order);
    Buffer pos = prefixCount(ctx, "pos", items.m, [&rep](Expr i) { return kir::eq(rep(i), i); });
    int slot = ctx.newSlot();
    ctx.builder().setSlot(slot, pos(Expr::index(items.m)));
    for (size_t out : {0, 1, 3})
      if (ctx.hasOutput(out) && ctx.outputDimPending(out, out == 0 ? a : 0))
        ctx.setOutputDimSlot(out, out == 0 ? a : 0, slot);
  }

  // Kernel 2: the outputs.
  kir::KernelBuilder& kb = ctx.newKernel();
  ItemOrder order(ctx, items);
  Buffer rep = firstOccurrences(ctx, items, order);
  auto is_new = [&rep](Expr i) { return kir::eq(rep(i), i); };
  Buffer pos;
  if (sorted) {
    pos = ctx.temp("pos", DType::kInt64, {items.m});
    kir::IterVar i = kb.var("q", items.m);
    kir::IterVar j = kb.var("qj", items.m);
    Expr smaller = is_new(j) && order.before(j, i);
    kb.compute(pos, {i}, kir::reduce(kir::ReduceOp::kSum, {j}, kir::select(smaller, Expr::index(1), Expr::index(0))));
  } else {
    pos = prefixCount(ctx, "pos", items.m, is_new);
  }
  Buffer src = scatterIndices(ctx, "src", items.m, is_new, [&pos](Expr i) { return pos(i); });

  if (ctx.hasOutput(0)) {
    Buffer x = ctx.input(0, axis ? dims : std::vector<int64_t>{items.m});
    Buffer y = ctx.output(0);
    std::vector<kir::IterVar> axes = ctx.outputVars(0, "y");
    std::vector<Expr> source = asExprs(axes);
    source[a] = src(axes[a]);
    kb.compute(y, axes, x.load(source));
  }
  if (ctx.hasOutput(1)) {
    Buffer indices = ctx.output(1);
    std::vector<kir::IterVar> u = ctx.outputVars(1, "u");
    kb.compute(indices, u, src(u[0]));
  }
  if (ctx.hasOutput(2)) {
    Buffer inverse = ctx.output(2);
    kir::IterVar i = kb.var("v", items.m);
    kb.compute(inverse, {i}, pos(rep(i)));
  }
  if (ctx.hasOutput(3)) {
    Buffer counts = ctx.output(3);
    std::vector<kir::IterVar> u = ctx.outputVars(3, "c");
    kir::IterVar i = kb.var("ci", items.m);
    Expr hit = kir::select(kir::eq(rep(i), src(u[0])), Expr::index(1), Expr::index(0));
    kb.compute(counts, u, kir::reduce(kir::ReduceOp::kSum, {i}, hit));
  }
  return Status::ok();
}

}  // namespace

void registerUniqueOps(OpRegistry& registry) {
  registry.add(
      OpSchema{"", "Unique", {11}, {{"axis", Kind::kInt}, {"sorted", Kind::kInt}}, inferUnique, lowerUnique});
}

}  // namespace kiln::ops
