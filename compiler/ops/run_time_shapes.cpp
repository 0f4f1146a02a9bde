#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {

using kir::Expr;

namespace {

// Outputs computed at run time stay below this many elements, so that index
// arithmetic on them never overflows int64 (the runtime bounds bytes too).
constexpr double kMaxRunTimeElements = 0x1p52;

}  // namespace

Expr indexAt(const LowerContext::Buffer& b, int64_t k) {
  Expr value = b.rank() == 0 ? b.load({}) : b.load({Expr::index(k)});
  return kir::cast(ir::DType::kInt64, value);
}

std::string slotsShape(const std::vector<int>& slots) {
  std::string s = "[";
  for (size_t i = 0; i < slots.size(); ++i) s += (i ? "x" : "") + std::string("{$") + std::to_string(slots[i]) + "}";
  return s + "]";
}

Expr productIs(const std::vector<int>& slots, int64_t count) {
  Expr exact = Expr::index(1), approx = Expr::constant(ir::DType::kFloat64, 1);
  for (int s : slots) {
    exact = exact * kir::slotValue(s);
    approx = approx * kir::cast(ir::DType::kFloat64, kir::slotValue(s));
  }
  return kir::eq(exact, Expr::index(count)) &&
         (approx < Expr::constant(ir::DType::kFloat64, static_cast<double>(count) + 0.5));
}

std::vector<int> setOutputDims(LowerContext& ctx, size_t out, const std::vector<Expr>& sizes) {
  kir::KernelBuilder& kb = ctx.builder();
  std::vector<int> slots;
  for (const Expr& size : sizes) {
    slots.push_back(ctx.newSlot());
    kb.setSlot(slots.back(), kir::cast(ir::DType::kInt64, size));
  }
  std::string name = "output '" + ctx.node().outputs[out]->name + "'";
  Expr valid = Expr::constant(ir::DType::kBool, 1);
  Expr elements = Expr::constant(ir::DType::kFloat64, 1);
  for (int s : slots) {
    valid = valid && (kir::slotValue(s) >= Expr::index(0));
    elements = elements * kir::cast(ir::DType::kFloat64, kir::slotValue(s));
  }
  valid = valid && (elements < Expr::constant(ir::DType::kFloat64, kMaxRunTimeElements));
  kb.check(ctx.addCheck(name + " would have shape " + slotsShape(slots) + ": a negative or too large size"), valid);
  std::vector<int64_t> known = ctx.outputDims(out);
  for (size_t d = 0; d < slots.size(); ++d) {
    if (ctx.outputDimPending(out, d)) {
      ctx.setOutputDimSlot(out, d, slots[d]);
      continue;
    }
    kb.check(ctx.addCheck(name + " has shape " + slotsShape(slots) + " at run time, but dimension " +
                          std::to_string(d) + " was inferred as " + std::to_string(known[d])),
             kir::eq(kir::slotValue(slots[d]), Expr::index(known[d])));
  }
  return slots;
}

void lowerRunTimeView(LowerContext& ctx, size_t in, size_t out) {
  std::vector<int64_t> in_dims = ctx.inputDims(in);
  int64_t count = 1;
  for (int64_t d : in_dims) count *= d;
  kir::KernelBuilder& kb = ctx.newKernel("copy");
  LowerContext::Buffer x = ctx.input(in, {count});
  LowerContext::Buffer y = ctx.output(out, {count});
  kir::IterVar i = kb.var("i", count);
  kb.compute(y, {i}, x(i));
}

ir::Shape unknownDims(size_t rank) { return ir::Shape(rank, ir::Dim{}); }

LowerContext::Buffer prefixCount(LowerContext& ctx, const std::string& name, int64_t n, const IndexFn& flag) {
  kir::KernelBuilder& kb = ctx.builder();
  LowerContext::Buffer pos = ctx.temp(name, ir::DType::kInt64, {n + 1});
  kir::IterVar first = kb.var("p0", 1);
  kb.compute(pos, {first}, Expr::index(0));
  kir::IterVar i = kb.var("p", n);
  Expr step = kir::select(flag(Expr(i)), Expr::index(1), Expr::index(0));
  kb.computeAt(pos, {i}, {Expr(i) + Expr::index(1)}, pos(i) + step);
  return pos;
}

LowerContext::Buffer scatterIndices(LowerContext& ctx, const std::string& name, int64_t n, const IndexFn& flag,
                                    const IndexFn& position) {
  kir::KernelBuilder& kb = ctx.builder();
  LowerContext::Buffer src = ctx.temp(name, ir::DType::kInt64, {n + 1});
  kir::IterVar i = kb.var("s", n);
  Expr at = kir::select(flag(Expr(i)), kir::min(kir::max(position(Expr(i)), Expr::index(0)), Expr::index(n)),
                        Expr::index(n));
  kb.computeAt(src, {i}, {at}, Expr(i));
  return src;
}

Expr isNonZero(Expr value) {
  if (value.dtype() == ir::DType::kBool) return value;
  ir::DType t = value.dtype() == ir::DType::kFloat16 || value.dtype() == ir::DType::kBFloat16 ? ir::DType::kFloat32
                                                                                               : value.dtype();
  return kir::binary(kir::BinaryOp::kNe, kir::cast(t, std::move(value)), Expr::constant(t, 0));
}

}  // namespace kiln::ops
