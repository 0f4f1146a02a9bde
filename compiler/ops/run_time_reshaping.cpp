// Run-time variants of reshaping.cpp's ops whose output shape comes from an
// input computed at run time: Expand's shape, Tile's repeats,
// ConstantOfShape's shape, Range's start/limit/delta, Squeeze's and
// Unsqueeze's axes. Each infers what it can (the rank; dims that do not
// depend on the data), and lowers to a kernel of shape steps that reads the
// deciding input into dim slots and checks it, then the usual element
// kernel over those slots.
#include <algorithm>

#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using kir::Expr;
using Buffer = LowerContext::Buffer;

Expr boolean(bool v) { return Expr::constant(ir::DType::kBool, v ? 1 : 0); }
Expr notExpr(Expr e) { return kir::unary(kir::UnaryOp::kNot, std::move(e)); }

// The static length of a 1-D integer input computed at run time.
Expected<int64_t> runTimeLength(const NodeView& ctx, size_t i, const char* role) {
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShapeOfRank(ctx, i, role, 1));
  if (!shape[0].isKnown() || ir::isFloat(ctx.inputType(i).dtype))
    return ctx.unsupportedError(std::string(role) + " (input " + std::to_string(i) +
                                ") is computed at run time and is not a 1-D integer tensor of known length");
  if (shape[0].value > ir::kMaxRank)
    return ctx.error(std::string(role) + " (input " + std::to_string(i) + ") has " + std::to_string(shape[0].value) +
                     " entries; a shape has at most " + std::to_string(ir::kMaxRank));
  return shape[0].value;
}

Status refuseRunTimeData(LowerContext& ctx) {
  if (ctx.isDynamicInput(0)) return ctx.unsupportedError("input 0 has a run-time shape as well");
  return Status::ok();
}

}  // namespace

std::vector<int> readIntoSlots(LowerContext& ctx, const Buffer& b, int64_t count) {
  std::vector<int> slots;
  for (int64_t k = 0; k < count; ++k) {
    slots.push_back(ctx.newSlot());
    ctx.builder().setSlot(slots.back(), indexAt(b, k));
  }
  return slots;
}

// ---- Expand: output = broadcast(input, shape) ----------------------------------

Status inferRunTimeExpand(InferContext& ctx, const ir::Shape& in) {
  KILN_ASSIGN_OR_RETURN(int64_t k, runTimeLength(ctx, 1, "shape"));
  size_t rank = std::max(in.size(), static_cast<size_t>(k));
  ir::Shape out = unknownDims(rank);
  for (size_t d = rank - in.size(); d < rank; ++d) {
    const ir::Dim& a = in[d - (rank - in.size())];
    if (a.isKnown() && a.value != 1) out[d] = a;  // a non-1 dim broadcasts only with 1 or itself
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out});
  return Status::ok();
}

Status lowerRunTimeExpand(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(refuseRunTimeData(ctx));
  std::vector<int64_t> in = ctx.inputDims(0);
  int64_t k = ctx.inputDims(1)[0];
  size_t rank = ctx.outputDims(0).size();
  ctx.newKernel("shape");
  std::vector<int> shape = readIntoSlots(ctx, ctx.input(1), k);
  std::vector<Expr> sizes;
  Expr ok = boolean(true);
  for (size_t d = 0; d < rank; ++d) {
    size_t in_off = rank - in.size(), shape_off = rank - static_cast<size_t>(k);
    int64_t a = d >= in_off ? in[d - in_off] : 1;
    if (d < shape_off) {
      sizes.push_back(Expr::index(a));
      continue;
    }
    Expr s = kir::slotValue(shape[d - shape_off]);
    if (a == 1) {
      sizes.push_back(s);
    } else {
      ok = ok && (kir::eq(s, Expr::index(1)) || kir::eq(s, Expr::index(a)));
      sizes.push_back(Expr::index(a));
    }
  }
  ctx.builder().check(ctx.addCheck("shape " + slotsShape(shape) + " does not broadcast with the input [" +
                                   ir::toString(ir::makeShape(in)) + "] (input 1)"),
                      ok);
  setOutputDims(ctx, 0, sizes);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  kb.compute(y, axes, x.load(broadcastIndex(asExprs(axes), x.shape())));
  return Status::ok();
}

// ---- Tile: output dim d = input dim d * repeats[d] -----------------------------

Status inferRunTimeTile(InferContext& ctx, const ir::Shape& in) {
  KILN_ASSIGN_OR_RETURN(int64_t k, runTimeLength(ctx, 1, "repeats"));
  if (static_cast<size_t>(k) != in.size())
    return ctx.error("repeats has " + std::to_string(k) + " entries for input of rank " + std::to_string(in.size()) +
                     " (input 1)");
  ctx.setOutputType(0, {ctx.inputType(0).dtype, unknownDims(in.size())});
  return Status::ok();
}

Status lowerRunTimeTile(LowerContext& ctx) {
  KILN_RETURN_IF_ERROR(refuseRunTimeData(ctx));
  std::vector<int64_t> in = ctx.inputDims(0);
  ctx.newKernel("shape");
  std::vector<int> repeats = readIntoSlots(ctx, ctx.input(1), static_cast<int64_t>(in.size()));
  std::vector<Expr> sizes;
  for (size_t d = 0; d < in.size(); ++d) sizes.push_back(kir::slotValue(repeats[d]) * Expr::index(in[d]));
  setOutputDims(ctx, 0, sizes);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer x = ctx.input(0);
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  std::vector<Expr> index;
  for (size_t d = 0; d < axes.size(); ++d) index.push_back(Expr(axes[d]) % Expr::index(in[d]));
  kb.compute(y, axes, x.load(index));
  return Status::ok();
}

// ---- ConstantOfShape -----------------------------------------------------------

Status inferRunTimeConstantOfShape(InferContext& ctx, ir::DType dtype) {
  KILN_ASSIGN_OR_RETURN(int64_t k, runTimeLength(ctx, 0, "input"));
  ctx.setOutputType(0, {dtype, unknownDims(static_cast<size_t>(k))});
  return Status::ok();
}

Expr constantOfShapeFill(const NodeView& ctx, ir::DType dtype) {
  const ir::Tensor* value = ctx.attrTensor("value");
  return value ? tensorElement(*value, 0, dtype) : Expr::constant(dtype, 0);
}

Status lowerRunTimeConstantOfShape(LowerContext& ctx) {
  int64_t k = ctx.inputDims(0)[0];
  ctx.newKernel("shape");
  std::vector<int> shape = readIntoSlots(ctx, ctx.input(0), k);
  std::vector<Expr> sizes;
  for (int s : shape) sizes.push_back(kir::slotValue(s));
  setOutputDims(ctx, 0, sizes);
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  kb.compute(y, axes, constantOfShapeFill(ctx, computeDType(y.dtype())));
  return Status::ok();
}

// ---- Range: count = max(ceil((limit - start) / delta), 0) ----------------------

Status inferRunTimeRange(InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, "start"));
    int64_t n = 1;
    for (const ir::Dim& d : shape) n = d.isKnown() ? n * d.value : -1;
    if (n != 1) return ctx.error("input " + std::to_string(i) + " must be a scalar");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, unknownDims(1)});
  return Status::ok();
}

Status lowerRunTimeRange(LowerContext& ctx) {
  ir::DType dtype = ctx.inputDType(0);
  ctx.newKernel("shape");
  Buffer start = ctx.input(0, {1}), limit = ctx.input(1, {1}), delta = ctx.input(2, {1});
  Expr zero = Expr::index(0);
  Expr s = start(zero), l = limit(zero), d = delta(zero);
  Expr count;
  if (ir::isFloat(dtype)) {
    // Clamped before the cast: NaN and huge counts become 2^52, which the
    // size check refuses; negative ones 0.
    auto f64 = [](Expr e) { return kir::cast(ir::DType::kFloat64, std::move(e)); };
    Expr c = kir::unary(kir::UnaryOp::kCeil, (f64(l) - f64(s)) / f64(d));
    Expr big = Expr::constant(ir::DType::kFloat64, 0x1p52), none = Expr::constant(ir::DType::kFloat64, 0);
    count = kir::cast(ir::DType::kInt64, kir::select(c < big, kir::select(c > none, c, none), big));
  } else {
    // Unsigned: limit - start and the count may leave int64 though every
    // element lies between the bounds (Range(-2^63, 2^63-1, 2^62) has 4).
    // Counts past 2^52 become 2^52, which the size check refuses.
    Expr s64 = kir::cast(ir::DType::kInt64, s), l64 = kir::cast(ir::DType::kInt64, l), d64 = kir::cast(ir::DType::kInt64, d);
    auto u64 = [](Expr e) { return kir::cast(ir::DType::kUInt64, std::move(e)); };
    Expr one = Expr::constant(ir::DType::kUInt64, 1), big = Expr::constant(ir::DType::kUInt64, 0x1p52);
    Expr up = d64 > zero;
    Expr span = kir::select(up, u64(l64) - u64(s64), u64(s64) - u64(l64));
    Expr magnitude = kir::select(up, u64(d64), Expr::constant(ir::DType::kUInt64, 0) - u64(d64));
    Expr n = (span - one) / magnitude + one;
    Expr nonempty = kir::select(up, l64 > s64, l64 < s64);
    count = kir::select(nonempty, kir::cast(ir::DType::kInt64, kir::select(n < big, n, big)), zero);
  }
  ir::DType t = ir::isFloat(dtype) ? dtype : ir::DType::kInt64;
  ctx.builder().check(ctx.addCheck("delta (input 2) is 0"),
                      notExpr(kir::eq(kir::cast(t, d), Expr::constant(t, 0))));
  setOutputDims(ctx, 0, {kir::max(count, zero)});
  kir::KernelBuilder& kb = ctx.newKernel();
  Buffer s2 = ctx.input(0, {1}), d2 = ctx.input(2, {1});
  Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = ctx.outputVars(0);
  Expr i = kir::cast(computeDType(dtype), Expr(axes[0]));
  kb.compute(y, axes, kir::cast(dtype, toCompute(s2(zero)) + i * toCompute(d2(zero))));
  return Status::ok();
}

// ---- Squeeze, Unsqueeze with axes computed at run time --------------------------
// The rank is static (the input's, less or plus the number of axes); which
// dims are 1 is decided by the axes' values, read into slots.

namespace {

Expr countTrue(const std::vector<Expr>& flags, size_t end) {
  Expr n = Expr::index(0);
  for (size_t i = 0; i < end; ++i) n = n + kir::select(flags[i], Expr::index(1), Expr::index(0));
  return n;
}

// axes[j] normalized into [0, rank) (out of range stays out of range); each
// position's flag; and whether the axes are valid (in range, distinct).
struct RunTimeAxes {
  std::vector<int> slots;
  std::vector<Expr> picked;  // per position < rank
  Expr valid;
};

RunTimeAxes readAxes(LowerContext& ctx, int64_t count, int64_t rank) {
  RunTimeAxes axes;
  axes.slots = readIntoSlots(ctx, ctx.input(1), count);
  std::vector<Expr> normalized;
  axes.valid = boolean(true);
  for (int s : axes.slots) {
    Expr a = kir::slotValue(s);
    Expr n = kir::select(a < Expr::index(0), a + Expr::index(rank), a);
    axes.valid = axes.valid && (n >= Expr::index(0)) && (n < Expr::index(rank));
    normalized.push_back(n);
  }
  for (int64_t p = 0; p < rank; ++p) {
    Expr hit = boolean(false);
    for (const Expr& n : normalized) hit = hit || kir::eq(n, Expr::index(p));
    axes.picked.push_back(hit);
  }
  axes.valid = axes.valid && kir::eq(countTrue(axes.picked, static_cast<size_t>(rank)), Expr::index(count));
  return axes;
}

}  // namespace

Status inferRunTimeSqueeze(InferContext& ctx, const ir::Shape& in, bool squeeze) {
  KILN_ASSIGN_OR_RETURN(int64_t k, runTimeLength(ctx, 1, "axes"));
  if (squeeze && static_cast<size_t>(k) > in.size())
    return ctx.error("axes has " + std::to_string(k) + " entries for data of rank " + std::to_string(in.size()));
  size_t rank = squeeze ? in.size() - static_cast<size_t>(k) : in.size() + static_cast<size_t>(k);
  ctx.setOutputType(0, {ctx.inputType(0).dtype, unknownDims(rank)});
  return Status::ok();
}

Status lowerRunTimeSqueeze(LowerContext& ctx, bool squeeze) {
  KILN_RETURN_IF_ERROR(refuseRunTimeData(ctx));
  std::vector<int64_t> in = ctx.inputDims(0);
  int64_t k = ctx.inputDims(1)[0];
  auto r = static_cast<int64_t>(in.size());
  int64_t rank = squeeze ? r : r + k;  // the rank the axes index
  ctx.newKernel("shape");
  RunTimeAxes axes = readAxes(ctx, k, rank);
  std::vector<Expr> sizes;
  if (squeeze) {
    for (int64_t i = 0; i < r; ++i)
      if (in[static_cast<size_t>(i)] != 1) axes.valid = axes.valid && notExpr(axes.picked[static_cast<size_t>(i)]);
    for (int64_t o = 0; o < r - k; ++o) {  // output dim o is the o-th input dim not squeezed
      Expr size = Expr::index(0);
      for (size_t i = 0; i < in.size(); ++i) {
        Expr kept = notExpr(axes.picked[i]);
        Expr is_o = kept && kir::eq(Expr::index(static_cast<int64_t>(i)) - countTrue(axes.picked, i), Expr::index(o));
        size = size + kir::select(is_o, Expr::index(in[i]), Expr::index(0));
      }
      sizes.push_back(size);
    }
  } else {
    for (int64_t p = 0; p < rank; ++p) {  // a 1, or the input dim p - (inserted before p)
      Expr from = Expr::index(p) - countTrue(axes.picked, static_cast<size_t>(p));
      Expr size = Expr::index(1);
      for (size_t i = 0; i < in.size(); ++i)
        size = kir::select(kir::eq(from, Expr::index(static_cast<int64_t>(i))), Expr::index(in[i]), size);
      sizes.push_back(kir::select(axes.picked[static_cast<size_t>(p)], Expr::index(1), size));
    }
  }
  ctx.builder().check(ctx.addCheck("axes " + slotsShape(axes.slots) + " (input 1) are out of range, repeated, or " +
                                   "name a dim that is not 1 of data [" + ir::toString(ir::makeShape(in)) + "]"),
                      axes.valid);
  setOutputDims(ctx, 0, sizes);
  lowerRunTimeView(ctx, 0, 0);
  return Status::ok();
}

}  // namespace kiln::ops
