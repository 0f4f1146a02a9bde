// The integer matrix products and convolutions of already-quantized models:
// MatMulInteger and ConvInteger (int32 results), QLinearMatMul and
// QLinearConv (requantized int8/uint8 results). Operands are int8 or uint8;
// each product term is (a - a_zero_point) * (b - b_zero_point) in int32 and
// the sum accumulates in int32, exactly (wrapping only where int32 would
// overflow, as in every int32 accumulator). The QLinear ops then scale the
// sum by a_scale * b_scale / y_scale in float32 and quantize it:
//   y = saturate(round_half_even(acc * (a_scale * b_scale / y_scale)) + y_zero_point)
// Zero points and scales are per tensor or, where ONNX allows it, per row of
// A / per column of B (MatMul) and per output channel (the weight's).
// Conv padding reads the input's zero point, so it adds nothing to the sum.
#include <cstddef>
#include <cstdint>
#include <string>

#include "compiler/ops/broadcast.h"
#include "compiler/ops/quantize_exprs.h"
#include "compiler/ops/window.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;
constexpr size_t kNone = static_cast<size_t>(-1);

std::string typeName(DType dtype) { return std::string(ir::name(dtype)); }
bool present(const NodeView& ctx, size_t i) { return i != kNone && ctx.numInputs() > i && ctx.hasInput(i); }

Status expect8Bit(const NodeView& ctx, size_t i, std::string_view role) {
  DType dtype = ctx.inputType(i).dtype;
  if (dtype == DType::kInt8 || dtype == DType::kUInt8) return Status::ok();
  return ctx.error(std::string(role) + " has dtype " + typeName(dtype) + ", expected int8 or uint8 (input " +
                   std::to_string(i) + ")");
}

Status expectScale(const NodeView& ctx, size_t i) {
  DType dtype = ctx.inputType(i).dtype;
  bool ok = dtype == DType::kFloat32 || (ctx.opset() >= 21 && (dtype == DType::kFloat16 || dtype == DType::kBFloat16));
  if (ok) return Status::ok();
  return ctx.error("scale has dtype " + typeName(dtype) + ", expected float32 (input " + std::to_string(i) + ")");
}

// A zero point (same dtype as its operand) or scale whose shape is per tensor,
// or `per` elements along one dim (a row of A, a column of B, an output channel).
Status expectQuantParam(const NodeView& ctx, size_t i, size_t operand, std::string_view role, const ir::Dim& per,
                        std::string_view per_what, bool is_zero_point) {
  if (!present(ctx, i)) return Status::ok();
  if (is_zero_point) KILN_RETURN_IF_ERROR(expectSameDType(ctx, operand, i, role));
  else KILN_RETURN_IF_ERROR(expectScale(ctx, i));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, i, role));
  if (isPerTensor(shape)) return Status::ok();
  if (shape.size() == 1 && per.isKnown() && !conflictingDims(shape[0], per)) return Status::ok();
  return ctx.error(std::string(role) + " " + ir::toString(shape) + " must be a scalar or hold one value per " +
                   std::string(per_what) + " (input " + std::to_string(i) + ")");
}

// The element of a per-tensor or 1-D parameter that applies at position `at`
// of the dim it runs along.
Expr paramAt(const LowerContext::Buffer& param, Expr at) {
  int64_t count = 1;
  for (int64_t d : param.shape()) count *= d;
  if (count == 1) return param.load(std::vector<Expr>(param.rank(), Expr::index(0)));
  return param.load({std::move(at)});
}

Expr widened(Expr value) { return kir::cast(DType::kInt32, std::move(value)); }

// ---- MatMulInteger / QLinearMatMul ---------------------------------------------

struct MatMulInputs {
  size_t a, a_zp, b, b_zp;
  size_t a_scale = kNone, b_scale = kNone, y_scale = kNone, y_zp = kNone;
};
constexpr MatMulInputs kMatMulInteger{0, 2, 1, 3};
constexpr MatMulInputs kQLinearMatMul{0, 2, 3, 5, 1, 4, 6, 7};

Status inferIntegerMatMul(InferContext& ctx, const MatMulInputs& in) {
  bool qlinear = in.y_scale != kNone;
  KILN_RETURN_IF_ERROR(qlinear ? expectInputCount(ctx, 8, 8) : expectInputCount(ctx, 2, 4));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.a, "A"));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.b, "B"));
  KILN_ASSIGN_OR_RETURN(ir::Shape a, inputShapeOfMinRank(ctx, in.a, "A", 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShapeOfMinRank(ctx, in.b, "B", 1));
  const ir::Dim& k_b = b.size() == 1 ? b[0] : b[b.size() - 2];
  if (conflictingDims(a.back(), k_b))
    return ctx.error("A " + ir::toString(a) + " and B " + ir::toString(b) + " disagree on K");
  ir::Dim rows = a.size() >= 2 ? a[a.size() - 2] : ir::Dim{};
  ir::Dim cols = b.size() >= 2 ? b.back() : ir::Dim{};
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.a_zp, in.a, "a_zero_point", rows, "row of A", true));
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.b_zp, in.b, "b_zero_point", cols, "column of B", true));
  DType out = DType::kInt32;
  if (qlinear) {
    KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.a_scale, in.a, "a_scale", rows, "row of A", false));
    KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.b_scale, in.b, "b_scale", cols, "column of B", false));
    KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.y_scale, in.a, "y_scale", ir::Dim{}, "tensor", false));
    KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.y_zp, "y_zero_point"));
    KILN_ASSIGN_OR_RETURN(ir::Shape y_zp, inputShape(ctx, in.y_zp, "y_zero_point"));
    if (!isPerTensor(y_zp)) return ctx.error("y_zero_point " + ir::toString(y_zp) + " must be a scalar (input 7)");
    out = ctx.inputType(in.y_zp).dtype;
  }
  std::vector<ir::Shape> batches = {ir::Shape(a.begin(), a.end() - std::min<size_t>(a.size(), 2)),
                                    ir::Shape(b.begin(), b.end() - std::min<size_t>(b.size(), 2))};
  Expected<ir::Shape> shape = broadcastShapes(batches);
  if (!shape) return ctx.error("batch dims: " + shape.status().message());
  if (a.size() >= 2) shape->push_back(rows);
  if (b.size() >= 2) shape->push_back(cols);
  ctx.setOutputType(0, {out, shape.take()});
  return Status::ok();
}

std::vector<int64_t> batchDims(const std::vector<int64_t>& dims) {
  return std::vector<int64_t>(dims.begin(), dims.end() - std::min<size_t>(dims.size(), 2));
}

// True when input i is absent or a compile-time constant of zeros (the
// zero point of a symmetric quantization): its correction term vanishes.
bool knownZero(const NodeView& ctx, size_t i) {
  if (!present(ctx, i)) return true;
  const ir::Tensor* t = ctx.constantInput(i);
  if (t == nullptr) return false;
  for (std::byte b : t->bytes())
    if (b != std::byte{0}) return false;
  return true;
}

// Sums along dim `kd` of an 8-bit operand, kept as a dim of size 1 (so they
// are indexed like the operand with k = 0): computed here when the operand is
// a constant (a weight), else by a stage of the current kernel.
LowerContext::Buffer operandSums(LowerContext& ctx, kir::KernelBuilder& kb, size_t input,
                                 const LowerContext::Buffer& operand, size_t kd, const std::string& name) {
  std::vector<int64_t> dims = operand.shape();
  const int64_t depth = dims[kd];
  dims[kd] = 1;
  if (const ir::Tensor* t = ctx.constantInput(input)) {
    int64_t outer = 1, inner = 1;
    for (size_t d = 0; d < kd; ++d) outer *= dims[d];
    for (size_t d = kd + 1; d < dims.size(); ++d) inner *= dims[d];
    const auto* bytes = reinterpret_cast<const uint8_t*>(t->bytes().data());
    bool is_signed = t->dtype() == DType::kInt8;
    std::vector<int32_t> sums(static_cast<size_t>(outer * inner), 0);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < depth; ++k)
        for (int64_t i = 0; i < inner; ++i) {
          uint8_t v = bytes[(o * depth + k) * inner + i];
          sums[static_cast<size_t>(o * inner + i)] += is_signed ? static_cast<int8_t>(v) : v;
        }
    return ctx.constant(name, ir::Tensor::fromValues<int32_t>(DType::kInt32, dims, sums));
  }
  LowerContext::Buffer sums = ctx.temp(name, DType::kInt32, dims);
  std::vector<kir::IterVar> axes = kb.vars(dims, "s");
  kir::IterVar k = kb.var("k", depth);
  std::vector<Expr> index = asExprs(axes);
  index[kd] = k;
  kb.compute(sums, axes, kir::reduce(kir::ReduceOp::kSum, {k}, widened(operand.load(index))));
  return sums;
}

// The sum is formed over raw products, sum_k a*b, with the zero points
// applied outside it:
//   sum_k (a - za)(b - zb) = sum_k a*b - za*sum_k b - zb*sum_k a + K*za*zb
// (an identity in int32's wrapping arithmetic too). With a constant B the
// column sums are compile-time constants, and with a symmetric B (zb = 0)
// the row sums of A vanish, so the contraction itself is a plain 8-bit dot
// product that the CPU's int8 microkernels run (codegen/cpu/contraction.h).
Status lowerIntegerMatMul(LowerContext& ctx, const MatMulInputs& in) {
  std::vector<int64_t> a_dims = ctx.inputDims(in.a);
  std::vector<int64_t> b_dims = ctx.inputDims(in.b);
  bool a_is_matrix = a_dims.size() >= 2;
  bool b_is_matrix = b_dims.size() >= 2;
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer a = ctx.input(in.a);
  LowerContext::Buffer b = ctx.input(in.b);
  bool a_offset = !knownZero(ctx, in.a_zp);
  bool b_offset = !knownZero(ctx, in.b_zp);
  const size_t b_kd = b_dims.size() - (b_is_matrix ? 2 : 1);
  LowerContext::Buffer b_sums, a_sums;
  if (a_offset) b_sums = operandSums(ctx, kb, in.b, b, b_kd, "b_column_sums");
  if (b_offset) a_sums = operandSums(ctx, kb, in.a, a, a_dims.size() - 1, "a_row_sums");
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  std::vector<Expr> out_index = asExprs(axes);
  size_t batch_rank = axes.size() - a_is_matrix - b_is_matrix;
  std::span<const Expr> batch(out_index.data(), batch_rank);
  Expr row = a_is_matrix ? out_index[batch_rank] : Expr::index(0);
  Expr col = b_is_matrix ? out_index.back() : Expr::index(0);
  kir::IterVar k = kb.var("k", a_dims.back());

  auto a_index = [&](Expr at_k) {
    std::vector<Expr> index = broadcastIndex(batch, batchDims(a_dims));
    if (a_is_matrix) index.push_back(row);
    index.push_back(std::move(at_k));
    return index;
  };
  auto b_index = [&](Expr at_k) {
    std::vector<Expr> index = broadcastIndex(batch, batchDims(b_dims));
    index.push_back(std::move(at_k));
    if (b_is_matrix) index.push_back(col);
    return index;
  };
  Expr acc = kir::reduce(kir::ReduceOp::kSum, {k}, widened(a.load(a_index(k))) * widened(b.load(b_index(k))));
  Expr za = a_offset ? widened(paramAt(ctx.input(in.a_zp), row)) : Expr();
  Expr zb = b_offset ? widened(paramAt(ctx.input(in.b_zp), col)) : Expr();
  if (a_offset) acc = acc - za * b_sums.load(b_index(Expr::index(0)));
  if (b_offset) acc = acc - zb * a_sums.load(a_index(Expr::index(0)));
  if (a_offset && b_offset) acc = acc + Expr::constant(DType::kInt32, static_cast<double>(a_dims.back())) * za * zb;
  if (in.y_scale == kNone) {
    kb.compute(y, axes, acc);
    return Status::ok();
  }
  Expr scale = toCompute(paramAt(ctx.input(in.a_scale), row)) * toCompute(paramAt(ctx.input(in.b_scale), col)) /
               toCompute(paramAt(ctx.input(in.y_scale), Expr::index(0)));
  Expr zp = paramAt(ctx.input(in.y_zp), Expr::index(0));
  kb.compute(y, axes, quantizeTo(y.dtype(), kir::cast(DType::kFloat32, acc) * kir::cast(DType::kFloat32, scale), zp));
  return Status::ok();
}

// ---- ConvInteger / QLinearConv -------------------------------------------------
// Conv's geometry (group, strides, dilations, pads, auto_pad) over int8/uint8.

struct ConvInputs {
  size_t x, x_zp, w, w_zp;
  size_t x_scale = kNone, w_scale = kNone, y_scale = kNone, y_zp = kNone, bias = kNone;
};
constexpr ConvInputs kConvInteger{0, 2, 1, 3};
constexpr ConvInputs kQLinearConv{0, 2, 3, 5, 1, 4, 6, 7, 8};

std::string inputText(size_t i) { return " (input " + std::to_string(i) + ")"; }

Expected<std::vector<int64_t>> convKernel(const NodeView& ctx, const ir::Shape& w, size_t w_input) {
  std::vector<int64_t> kernel = spatialSizes(w);
  for (int64_t k : kernel)
    if (k < 0) return ctx.unsupportedError("w " + ir::toString(w) + " has unknown spatial dims" + inputText(w_input));
  if (ctx.hasAttr("kernel_shape") && ctx.attrInts("kernel_shape") != kernel)
    return ctx.error("kernel_shape does not match w " + ir::toString(w) + inputText(w_input));
  return kernel;
}

Status checkConvChannels(const NodeView& ctx, const ir::Shape& x, const ir::Shape& w, size_t w_input) {
  int64_t group = ctx.attrInt("group", 1);
  if (group < 1) return ctx.error("group " + std::to_string(group) + " must be positive");
  if (w[0].isKnown() && w[0].value % group != 0)
    return ctx.error("output channels " + std::to_string(w[0].value) + " are not divisible by group " +
                     std::to_string(group));
  if (x[1].isKnown() && w[1].isKnown() && x[1].value != w[1].value * group)
    return ctx.error("w " + ir::toString(w) + " expects " + std::to_string(w[1].value * group) +
                     " input channels, x " + ir::toString(x) + " has " + std::to_string(x[1].value) +
                     inputText(w_input));
  return Status::ok();
}

// The zero points, scales and bias of an integer convolution whose weight
// has `filters` output channels; the output's dtype.
Expected<DType> checkConvQuantParams(InferContext& ctx, const ConvInputs& in, const ir::Dim& filters) {
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.x_zp, in.x, "x_zero_point", ir::Dim{}, "tensor", true));
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.w_zp, in.w, "w_zero_point", filters, "output channel", true));
  if (in.y_scale == kNone) return DType::kInt32;
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.x_scale, in.x, "x_scale", ir::Dim{}, "tensor", false));
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.w_scale, in.w, "w_scale", filters, "output channel", false));
  KILN_RETURN_IF_ERROR(expectQuantParam(ctx, in.y_scale, in.x, "y_scale", ir::Dim{}, "tensor", false));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.y_zp, "y_zero_point"));
  KILN_ASSIGN_OR_RETURN(ir::Shape y_zp, inputShape(ctx, in.y_zp, "y_zero_point"));
  if (!isPerTensor(y_zp)) return ctx.error("y_zero_point " + ir::toString(y_zp) + " must be a scalar (input 7)");
  if (present(ctx, in.bias)) {
    if (ctx.inputType(in.bias).dtype != DType::kInt32)
      return ctx.error("B has dtype " + typeName(ctx.inputType(in.bias).dtype) + ", expected int32 (input 8)");
    KILN_ASSIGN_OR_RETURN(ir::Shape bias, inputShapeOfRank(ctx, in.bias, "B", 1));
    if (conflictingDims(bias[0], filters))
      return ctx.error("B has " + std::to_string(bias[0].value) + " elements, expected " +
                       std::to_string(filters.value) + " (input 8)");
  }
  return ctx.inputType(in.y_zp).dtype;
}

Status inferIntegerConv(InferContext& ctx, const ConvInputs& in) {
  bool qlinear = in.y_scale != kNone;
  KILN_RETURN_IF_ERROR(qlinear ? expectInputCount(ctx, 8, 9) : expectInputCount(ctx, 2, 4));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.x, "x"));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.w, "w"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfMinRank(ctx, in.x, "x", 3));
  if (x.size() > 5)
    return ctx.unsupportedError("x has rank " + std::to_string(x.size()) + "; Kiln supports 1-D to 3-D convolutions");
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, in.w, "w", x.size()));
  KILN_RETURN_IF_ERROR(checkConvChannels(ctx, x, w, in.w));
  KILN_ASSIGN_OR_RETURN(DType out, checkConvQuantParams(ctx, in, w[0]));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, convKernel(ctx, w, in.w));
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, spatialSizes(x), kernel, false));
  ir::Shape shape = {x[0], w[0]};
  for (int64_t size : window.out) shape.push_back(size < 0 ? ir::Dim{} : ir::Dim::known(size));
  ctx.setOutputType(0, {out, shape});
  return Status::ok();
}

// x_scale * w_scale[m] / y_scale in float32. With all three constant (as
// in every statically quantized model) it is computed here, in the same
// float32 operations and order, into one constant per output channel, so
// the epilogue multiplies instead of dividing per element.
Expr requantScale(LowerContext& ctx, const ConvInputs& in, int64_t filters, const Expr& m) {
  const ir::Tensor* xs = ctx.constantInput(in.x_scale);
  const ir::Tensor* ws = ctx.constantInput(in.w_scale);
  const ir::Tensor* ys = ctx.constantInput(in.y_scale);
  auto is_f32 = [](const ir::Tensor* t) { return t && t->dtype() == DType::kFloat32; };
  if (is_f32(xs) && is_f32(ws) && is_f32(ys)) {
    auto at = [](const ir::Tensor* t, int64_t i) {
      return reinterpret_cast<const float*>(t->bytes().data())[t->elementCount() == 1 ? 0 : i];
    };
    std::vector<float> scales(static_cast<size_t>(filters));
    for (int64_t i = 0; i < filters; ++i) scales[static_cast<size_t>(i)] = at(xs, 0) * at(ws, i) / at(ys, 0);
    return ctx.constant("requant_scale", ir::Tensor::fromValues<float>(DType::kFloat32, {filters}, scales))(m);
  }
  return toCompute(paramAt(ctx.input(in.x_scale), Expr::index(0))) * toCompute(paramAt(ctx.input(in.w_scale), m)) /
         toCompute(paramAt(ctx.input(in.y_scale), Expr::index(0)));
}

// The int32 sum of a convolution as its output: as is (ConvInteger), or
// with the bias added, scaled by x_scale * w_scale[m] / y_scale and
// quantized (QLinearConv). `m` indexes the output channel, of `filters`.
void storeConvResult(LowerContext& ctx, kir::KernelBuilder& kb, const ConvInputs& in, const LowerContext::Buffer& y,
                     const std::vector<kir::IterVar>& axes, Expr acc, const Expr& m, int64_t filters) {
  if (in.y_scale == kNone) {
    kb.compute(y, axes, acc);
    return;
  }
  if (present(ctx, in.bias)) acc = acc + ctx.input(in.bias)(m);
  Expr zp = paramAt(ctx.input(in.y_zp), Expr::index(0));
  kb.compute(y, axes, quantizeTo(y.dtype(), kir::cast(DType::kFloat32, acc) * requantScale(ctx, in, filters, m), zp));
}

Status lowerIntegerConv(LowerContext& ctx, const ConvInputs& in) {
  std::vector<int64_t> x_dims = ctx.inputDims(in.x);
  std::vector<int64_t> w_dims = ctx.inputDims(in.w);
  std::vector<int64_t> in_sizes(x_dims.begin() + 2, x_dims.end());
  std::vector<int64_t> kernel(w_dims.begin() + 2, w_dims.end());
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, in_sizes, kernel, false));
  int64_t group = ctx.attrInt("group", 1);
  int64_t filters_per_group = w_dims[0] / group;

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(in.x);
  LowerContext::Buffer w = ctx.input(in.w);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  kir::IterVar c = kb.var("c", w_dims[1]);
  std::vector<kir::IterVar> offsets = kb.vars(kernel, "r");
  Expr m = axes[1];
  Expr channel = group == 1 ? Expr(c) : m / Expr::index(filters_per_group) * Expr::index(w_dims[1]) + c;
  std::vector<Expr> positions;
  for (size_t i = 0; i < window.rank(); ++i) positions.push_back(inputPosition(window, i, axes[2 + i], offsets[i]));
  std::vector<Expr> x_index = {axes[0], channel};
  std::vector<Expr> w_index = {m, c};
  x_index.insert(x_index.end(), positions.begin(), positions.end());
  w_index.insert(w_index.end(), offsets.begin(), offsets.end());

  Expr x_term = widened(x.load(x_index));
  if (present(ctx, in.x_zp)) x_term = x_term - widened(paramAt(ctx.input(in.x_zp), Expr::index(0)));
  if (std::optional<Expr> inside = insideInput(window, positions, in_sizes))
    x_term = kir::select(*inside, x_term, Expr::constant(DType::kInt32, 0));
  Expr w_term = widened(w.load(w_index));
  if (present(ctx, in.w_zp)) w_term = w_term - widened(paramAt(ctx.input(in.w_zp), m));
  std::vector<kir::IterVar> reduced = {c};
  reduced.insert(reduced.end(), offsets.begin(), offsets.end());
  storeConvResult(ctx, kb, in, y, axes, kir::reduce(kir::ReduceOp::kSum, reduced, x_term * w_term), m, w_dims[0]);
  return Status::ok();
}

// kiln.QLinearConvNhwc: a 2-D QLinearConv (group 1) over channels-last
// data, written by the channels-last pass (passes/channels_last.cpp) for the
// CPU backend. Inputs as QLinearConv's, but x is [N, H, W, C] and w is
// [KH, KW, C, M] (HWIO); y is [N, OH, OW, M]:
//   y[n, h, w, m] = requantize( B[m] + sum_{r0, r1, c} (P[n, h*s0 + r0*d0, w*s1 + r1*d1, c] - zx) * (w[r0, r1, c, m] - zw[m]) )
// where P is x padded with its zero point. Padding is a stage of its own
// (when any window leaves x), so the sum reads P unguarded and contiguously
// along c, and the raw product sum_k P*w is what the CPU's int8 dot-product
// microkernel runs, with w packed along m: zx * sum_k w[.., m] comes off
// outside the sum (a compile-time constant for a constant w), as does
// zw[m] * sum_k P when w is not symmetric (the generic loops then run).
Status inferQLinearConvNhwc(InferContext& ctx) {
  const ConvInputs& in = kQLinearConv;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 8, 9));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.x, "x"));
  KILN_RETURN_IF_ERROR(expect8Bit(ctx, in.w, "w"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShapeOfRank(ctx, in.x, "x", 4));
  KILN_ASSIGN_OR_RETURN(ir::Shape w, inputShapeOfRank(ctx, in.w, "w", 4));
  std::optional<std::vector<int64_t>> xd = ir::knownDims(x), wd = ir::knownDims(w);
  if (!xd || !wd)
    return ctx.unsupportedError("QLinearConvNhwc needs known shapes, got x " + ir::toString(x) + " and w " + ir::toString(w));
  if (ctx.attrInt("group", 1) != 1) return ctx.unsupportedError("QLinearConvNhwc takes group 1 only");
  if ((*xd)[3] != (*wd)[2])
    return ctx.error("w " + ir::toString(w) + " (HWIO) does not fit x " + ir::toString(x) + " (NHWC)" + inputText(in.w));
  KILN_ASSIGN_OR_RETURN(DType out, checkConvQuantParams(ctx, in, w[3]));
  const std::vector<int64_t> sizes = {(*xd)[1], (*xd)[2]};
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, sizes, {(*wd)[0], (*wd)[1]}, false));
  ctx.setOutputType(0, {out, ir::Shape{x[0], ir::Dim::known(window.out[0]), ir::Dim::known(window.out[1]), w[3]}});
  return Status::ok();
}

// sum over (r0, r1, c) of w[r0, r1, c, m], int32, as a [M] buffer: a
// constant when w is one, else a stage of the kernel.
LowerContext::Buffer hwioFilterSums(LowerContext& ctx, kir::KernelBuilder& kb, size_t input,
                                    const LowerContext::Buffer& w) {
  const std::vector<int64_t> dims = w.shape();
  const int64_t filters = dims[3];
  if (const ir::Tensor* t = ctx.constantInput(input)) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(t->bytes().data());
    const bool is_signed = t->dtype() == DType::kInt8;
    std::vector<int32_t> sums(static_cast<size_t>(filters), 0);
    for (int64_t i = 0; i < t->elementCount(); ++i)
      sums[static_cast<size_t>(i % filters)] += is_signed ? static_cast<int8_t>(bytes[i]) : bytes[i];
    return ctx.constant("w_filter_sums", ir::Tensor::fromValues<int32_t>(DType::kInt32, {filters}, sums));
  }
  LowerContext::Buffer sums = ctx.temp("w_filter_sums", DType::kInt32, {filters});
  kir::IterVar m = kb.var("m", filters);
  std::vector<kir::IterVar> k = kb.vars({dims[0], dims[1], dims[2]}, "k");
  kb.compute(sums, {m}, kir::reduce(kir::ReduceOp::kSum, k, widened(w.load({k[0], k[1], k[2], m}))));
  return sums;
}

Status lowerQLinearConvNhwc(LowerContext& ctx) {
  const ConvInputs& in = kQLinearConv;
  const std::vector<int64_t> x_dims = ctx.inputDims(in.x);
  const std::vector<int64_t> w_dims = ctx.inputDims(in.w);
  const std::vector<int64_t> in_sizes = {x_dims[1], x_dims[2]};
  KILN_ASSIGN_OR_RETURN(Window window, resolveWindow(ctx, in_sizes, {w_dims[0], w_dims[1]}, false));

  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(in.x);
  LowerContext::Buffer w = ctx.input(in.w);
  LowerContext::Buffer y = ctx.output(0);
  const bool x_offset = !knownZero(ctx, in.x_zp);
  const bool w_offset = !knownZero(ctx, in.w_zp);
  Expr zx = x_offset ? paramAt(ctx.input(in.x_zp), Expr::index(0)) : Expr::constant(x.dtype(), 0);

  // P: x with its padding written out as the zero point. Every window then
  // lies inside P, which starts at input position -pads_begin. With a
  // constant symmetric weight and a channel count that is not a multiple of
  // 4 (an RGB stem), P and a copy of the weight are also padded to a
  // multiple of 4 channels, P with the zero point and the weight with zeros,
  // which add nothing: every dot group of four channels is then a whole
  // word, not bytes gathered one by one.
  const int64_t channels = x_dims[3];
  const ir::Tensor* w_constant = ctx.constantInput(in.w);
  const int64_t depth = channels % 4 != 0 && w_constant && !w_offset ? (channels + 3) / 4 * 4 : channels;
  LowerContext::Buffer source = x;
  LowerContext::Buffer weight = w;
  if (depth != channels) {
    std::vector<std::byte> padded(static_cast<size_t>(w_dims[0] * w_dims[1] * depth * w_dims[3]), std::byte{0});
    const std::byte* from = w_constant->bytes().data();
    for (int64_t point = 0; point < w_dims[0] * w_dims[1]; ++point)
      std::copy_n(from + point * channels * w_dims[3], channels * w_dims[3], padded.data() + point * depth * w_dims[3]);
    weight = ctx.constant("w_channels_padded",
                          ir::Tensor::fromBytes(w_constant->dtype(), {w_dims[0], w_dims[1], depth, w_dims[3]}, std::move(padded)));
  }
  if (depth != channels || mayLeaveInput(window, 0, in_sizes[0]) || mayLeaveInput(window, 1, in_sizes[1])) {
    std::vector<int64_t> dims = {x_dims[0], window.span(0), window.span(1), depth};
    for (size_t i = 0; i < 2; ++i) dims[1 + i] += (window.out[i] - 1) * window.strides[i];
    source = ctx.temp("padded", x.dtype(), dims);
    std::vector<kir::IterVar> p = kb.vars(dims, "p");
    std::vector<Expr> positions = {p[1] - Expr::index(window.pads_begin[0]), p[2] - Expr::index(window.pads_begin[1])};
    Expr value = x.load({p[0], positions[0], positions[1], p[3]});
    std::optional<Expr> inside = insideInput(window, positions, in_sizes);
    if (depth != channels) {
      Expr real = kir::binary(kir::BinaryOp::kLt, Expr(p[3]), Expr::index(channels));
      inside = inside ? kir::binary(kir::BinaryOp::kAnd, *inside, real) : real;
    }
    if (inside) value = kir::select(*inside, value, zx);
    kb.compute(source, p, value);
    window.pads_begin = {0, 0};
  }

  std::vector<kir::IterVar> axes = kb.vars(y.shape(), "o");
  const Expr m = axes[3];
  // A 1x1 kernel reduces over the channel alone.
  const bool pointwise = w_dims[0] == 1 && w_dims[1] == 1;
  auto window_sum = [&](auto term) {
    std::vector<kir::IterVar> reduced = pointwise ? std::vector<kir::IterVar>{} : kb.vars({w_dims[0], w_dims[1]}, "r");
    std::vector<Expr> offsets = {Expr::index(0), Expr::index(0)};
    if (!pointwise) offsets = {reduced[0], reduced[1]};
    kir::IterVar c = kb.var("c", depth);
    reduced.push_back(c);
    Expr p = widened(source.load({axes[0], inputPosition(window, 0, axes[1], offsets[0]),
                                  inputPosition(window, 1, axes[2], offsets[1]), c}));
    return kir::reduce(kir::ReduceOp::kSum, reduced, term(p, offsets, c));
  };
  Expr acc = window_sum([&](Expr p, const std::vector<Expr>& r, const kir::IterVar& c) {
    return p * widened(weight.load({r[0], r[1], c, m}));
  });
  Expr zw = w_offset ? widened(paramAt(ctx.input(in.w_zp), m)) : Expr();
  if (x_offset) acc = acc - widened(zx) * hwioFilterSums(ctx, kb, in.w, w)(m);
  if (w_offset) acc = acc - zw * window_sum([](Expr p, const std::vector<Expr>&, const kir::IterVar&) { return p; });
  if (x_offset && w_offset)
    acc = acc + Expr::constant(DType::kInt32, static_cast<double>(w_dims[0] * w_dims[1] * w_dims[2])) * widened(zx) * zw;
  storeConvResult(ctx, kb, in, y, axes, acc, m, w_dims[3]);
  return Status::ok();
}

std::vector<AttrSpec> convAttributes() {
  return {{"auto_pad", Kind::kString}, {"dilations", Kind::kInts}, {"group", Kind::kInt},
          {"kernel_shape", Kind::kInts}, {"pads", Kind::kInts},     {"strides", Kind::kInts}};
}

}  // namespace

void registerQuantizedLinearOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "MatMulInteger", {10}, {},
                        [](InferContext& ctx) { return inferIntegerMatMul(ctx, kMatMulInteger); },
                        [](LowerContext& ctx) { return lowerIntegerMatMul(ctx, kMatMulInteger); }});
  registry.add(OpSchema{"", "QLinearMatMul", {10, 21}, {},
                        [](InferContext& ctx) { return inferIntegerMatMul(ctx, kQLinearMatMul); },
                        [](LowerContext& ctx) { return lowerIntegerMatMul(ctx, kQLinearMatMul); }});
  registry.add(OpSchema{"", "ConvInteger", {10}, convAttributes(),
                        [](InferContext& ctx) { return inferIntegerConv(ctx, kConvInteger); },
                        [](LowerContext& ctx) { return lowerIntegerConv(ctx, kConvInteger); }});
  registry.add(OpSchema{"", "QLinearConv", {10}, convAttributes(),
                        [](InferContext& ctx) { return inferIntegerConv(ctx, kQLinearConv); },
                        [](LowerContext& ctx) { return lowerIntegerConv(ctx, kQLinearConv); }});
  registry.add(OpSchema{kKilnDomain, "QLinearConvNhwc", {1}, convAttributes(), inferQLinearConvNhwc,
                        lowerQLinearConvNhwc});
}

}  // namespace kiln::ops
