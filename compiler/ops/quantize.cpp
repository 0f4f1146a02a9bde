// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear: the QDQ ops of
// already-quantized models.
//   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear: y = (x - zero_point) * scale
// The scale and zero point are per tensor (a scalar or one element), per
// axis (a 1-D tensor along `axis`, opset 13) or per block (same rank as x,
// `block_size` elements of x along `axis` share one, opset 21). Scales and
// zero points may be run-time inputs: only their shapes shape the kernel.
// Quantized types: int8 and uint8, int16 and uint16 from opset 21, int32 as
// DequantizeLinear's input; float8 and 4-bit types are not supported.
// `saturate` (opset 19) concerns only float8 outputs and so changes nothing
// here: integer outputs always saturate.
#include <string>

#include "compiler/ops/quantize_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using ir::DType;
using kir::Expr;

std::string typeName(DType dtype) { return std::string(ir::name(dtype)); }

// The quantized integer types of `opset` (`with_int32`: DequantizeLinear's input).
bool isQuantizedType(DType dtype, int opset, bool with_int32) {
  if (dtype == DType::kInt8 || dtype == DType::kUInt8) return true;
  if (dtype == DType::kInt16 || dtype == DType::kUInt16) return opset >= 21;
  return with_int32 && dtype == DType::kInt32;
}

Status expectQuantizedType(const NodeView& ctx, DType dtype, std::string_view what, bool with_int32) {
  if (isQuantizedType(dtype, ctx.opset(), with_int32)) return Status::ok();
  std::string allowed = ctx.opset() >= 21 ? "int8, uint8, int16 or uint16" : "int8 or uint8";
  if (with_int32) allowed = ctx.opset() >= 21 ? "int8, uint8, int16, uint16 or int32" : "int8, uint8 or int32";
  return ctx.unsupportedError(std::string(what) + " has dtype " + typeName(dtype) + "; Kiln supports " + allowed +
                              " at opset " + std::to_string(ctx.opset()));
}

// Scales are float32 up to opset 19, then also float16 and bfloat16.
Status expectScaleType(const NodeView& ctx, size_t i) {
  DType dtype = ctx.inputType(i).dtype;
  bool ok = dtype == DType::kFloat32 || (ctx.opset() >= 19 && (dtype == DType::kFloat16 || dtype == DType::kBFloat16));
  if (ok) return Status::ok();
  return ctx.error("scale has dtype " + typeName(dtype) + ", expected " +
                   (ctx.opset() >= 19 ? "float32, float16 or bfloat16" : "float32") + " (input " + std::to_string(i) +
                   ")");
}

// How the scale (input `scale_input`) and zero point (the next input) line up with x.
Expected<QuantParamLayout> paramLayout(const NodeView& ctx, const ir::Shape& x, size_t scale_input) {
  KILN_RETURN_IF_ERROR(expectAttrSince(ctx, "axis", 13));
  KILN_RETURN_IF_ERROR(expectAttrSince(ctx, "block_size", 21));
  KILN_ASSIGN_OR_RETURN(ir::Shape scale, inputShape(ctx, scale_input, "scale"));
  size_t zp_input = scale_input + 1;
  if (ctx.numInputs() > zp_input && ctx.hasInput(zp_input)) {
    KILN_ASSIGN_OR_RETURN(ir::Shape zp, inputShape(ctx, zp_input, "zero_point"));
    bool same = zp.size() == scale.size();
    for (size_t d = 0; same && d < zp.size(); ++d) same = !conflictingDims(zp[d], scale[d]);
    if (!same)
      return ctx.error("zero_point " + ir::toString(zp) + " and scale " + ir::toString(scale) +
                       " differ in shape (inputs " + std::to_string(scale_input) + " and " + std::to_string(zp_input) +
                       ")");
  }
  int64_t block_size = ctx.attrInt("block_size", 0);
  if (block_size < 0) return ctx.error("block_size " + std::to_string(block_size) + " must not be negative");
  if (isPerTensor(scale) && block_size == 0) return QuantParamLayout{};
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(ctx, ctx.attrInt("axis", 1), static_cast<int64_t>(x.size())));
  size_t a = static_cast<size_t>(axis);
  if (block_size == 0) {
    if (scale.size() != 1)
      return ctx.error("scale " + ir::toString(scale) + " must be a scalar or 1-D (per axis) without block_size");
    if (ctx.opset() < 13) return ctx.error("per-axis scale " + ir::toString(scale) + " needs opset 13");
    if (conflictingDims(scale[0], x[a]))
      return ctx.error("scale has " + std::to_string(scale[0].value) + " elements, x " + ir::toString(x) + " has " +
                       std::to_string(x[a].value) + " along axis " + std::to_string(axis));
    return QuantParamLayout{QuantParamLayout::Kind::kAxis, a, 0};
  }
  bool fits = scale.size() == x.size();
  for (size_t d = 0; fits && d < x.size(); ++d) {
    if (!x[d].isKnown() || !scale[d].isKnown()) continue;
    int64_t expected = d == a ? (x[d].value + block_size - 1) / block_size : x[d].value;
    fits = scale[d].value == expected;
  }
  if (!fits)
    return ctx.error("scale " + ir::toString(scale) + " does not block x " + ir::toString(x) + " by block_size " +
                     std::to_string(block_size) + " along axis " + std::to_string(axis));
  return QuantParamLayout{QuantParamLayout::Kind::kBlocked, a, block_size};
}

bool hasZeroPoint(const NodeView& ctx, size_t i) { return ctx.numInputs() > i && ctx.hasInput(i); }

// ---- QuantizeLinear ------------------------------------------------------------

// The output type: the zero point's, else output_dtype (opset 21), else uint8.
Expected<DType> quantizedOutputType(const NodeView& ctx) {
  KILN_RETURN_IF_ERROR(expectAttrSince(ctx, "output_dtype", 21));
  KILN_RETURN_IF_ERROR(expectAttrSince(ctx, "saturate", 19));
  int64_t code = ctx.attrInt("output_dtype", 0);
  std::optional<DType> attr_type;
  if (code != 0) {
    attr_type = ir::dtypeFromOnnx(static_cast<int32_t>(code));
    if (!attr_type)
      return ctx.unsupportedError("output_dtype=" + std::to_string(code) +
                                  " is not supported; Kiln quantizes to int8, uint8, int16 and uint16");
  }
  if (hasZeroPoint(ctx, 2)) {
    DType zp = ctx.inputType(2).dtype;
    if (attr_type && *attr_type != zp)
      return ctx.error("output_dtype " + typeName(*attr_type) + " differs from y_zero_point's dtype " + typeName(zp));
    attr_type = zp;
  }
  DType out = attr_type.value_or(DType::kUInt8);
  KILN_RETURN_IF_ERROR(expectQuantizedType(ctx, out, "the quantized output", false));
  return out;
}

Status inferQuantize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "x"));
  DType x_type = ctx.inputType(0).dtype;
  bool half = x_type == DType::kFloat16 || x_type == DType::kBFloat16;
  if (!(x_type == DType::kFloat32 || x_type == DType::kInt32 || (half && ctx.opset() >= 19)))
    return ctx.error("x has dtype " + typeName(x_type) + ", expected float32" +
                     (ctx.opset() >= 19 ? ", float16, bfloat16" : "") + " or int32 (input 0)");
  KILN_RETURN_IF_ERROR(expectScaleType(ctx, 1));
  KILN_ASSIGN_OR_RETURN(DType out, quantizedOutputType(ctx));
  KILN_ASSIGN_OR_RETURN(QuantParamLayout layout, paramLayout(ctx, x, 1));
  (void)layout;
  ctx.setOutputType(0, {out, x});
  return Status::ok();
}

Status lowerQuantize(LowerContext& ctx) {
  ir::Shape x_shape = *ctx.inputType(0).shape;
  KILN_ASSIGN_OR_RETURN(QuantParamLayout layout, paramLayout(ctx, x_shape, 1));
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer scale = ctx.input(1);
  Expr zp;
  std::vector<kir::IterVar> axes = kb.vars(ctx.outputDims(0));
  std::vector<Expr> index = asExprs(axes);
  if (hasZeroPoint(ctx, 2)) zp = quantParamAt(ctx.input(2), layout, index);
  LowerContext::Buffer y = ctx.output(0);
  Expr s = toCompute(quantParamAt(scale, layout, index));
  Expr value = kir::cast(s.dtype(), x.load(index));
  kb.compute(y, axes, quantizeTo(y.dtype(), value / s, zp));
  return Status::ok();
}

// ---- DequantizeLinear ----------------------------------------------------------

Status inferDequantize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 3));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "x"));
  KILN_RETURN_IF_ERROR(expectQuantizedType(ctx, ctx.inputType(0).dtype, "x (input 0)", true));
  KILN_RETURN_IF_ERROR(expectScaleType(ctx, 1));
  if (hasZeroPoint(ctx, 2)) KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 2, "x_zero_point"));
  KILN_ASSIGN_OR_RETURN(QuantParamLayout layout, paramLayout(ctx, x, 1));
  (void)layout;
  ctx.setOutputType(0, {ctx.inputType(1).dtype, x});
  return Status::ok();
}

Status lowerDequantize(LowerContext& ctx) {
  ir::Shape x_shape = *ctx.inputType(0).shape;
  KILN_ASSIGN_OR_RETURN(QuantParamLayout layout, paramLayout(ctx, x_shape, 1));
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer scale = ctx.input(1);
  std::vector<kir::IterVar> axes = kb.vars(ctx.outputDims(0));
  std::vector<Expr> index = asExprs(axes);
  // x - zero_point in int32 for 8- and 16-bit x (no difference overflows
  // it), in int64 for int32 x.
  const DType diff_type = ir::byteSize(x.dtype()) <= 2 ? DType::kInt32 : DType::kInt64;
  Expr shifted = kir::cast(diff_type, x.load(index));
  if (hasZeroPoint(ctx, 2)) shifted = shifted - kir::cast(diff_type, quantParamAt(ctx.input(2), layout, index));
  LowerContext::Buffer y = ctx.output(0);
  Expr s = toCompute(quantParamAt(scale, layout, index));
  kb.compute(y, axes, kir::cast(y.dtype(), kir::cast(s.dtype(), shifted) * s));
  return Status::ok();
}

// ---- DynamicQuantizeLinear -----------------------------------------------------
// uint8 with a scale and zero point chosen from the data, the range always
// including 0:
//   lo = min(0, min(x)), hi = max(0, max(x)), scale = (hi - lo) / 255,
//   zero_point = saturate(round(0 - lo / scale)), y = saturate(round(x / scale) + zero_point)
// all in float32. An all-zero x has scale 0; its 0/0 quotients saturate to 0.

Status inferDynamicQuantize(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, 3));
  if (ctx.inputType(0).dtype != DType::kFloat32)
    return ctx.error("x has dtype " + typeName(ctx.inputType(0).dtype) + ", expected float32 (input 0)");
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "x"));
  ctx.setOutputType(0, {DType::kUInt8, x});
  ctx.setOutputType(1, {DType::kFloat32, ir::Shape{}});
  ctx.setOutputType(2, {DType::kUInt8, ir::Shape{}});
  return Status::ok();
}

Status lowerDynamicQuantize(LowerContext& ctx) {
  std::vector<int64_t> dims = ctx.inputDims(0);
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0, {count});
  LowerContext::Buffer scale = ctx.temp("scale", DType::kFloat32, {1});
  LowerContext::Buffer zero_point = ctx.temp("zero_point", DType::kFloat32, {1});
  Expr zero = Expr::constant(DType::kFloat32, 0);

  LowerContext::Buffer lo = ctx.temp("lo", DType::kFloat32, {1});
  kir::IterVar lo_i = kb.var("l", 1);
  kir::IterVar lo_r = kb.var("r", count);
  kb.compute(lo, {lo_i}, kir::min(zero, kir::reduce(kir::ReduceOp::kMin, {lo_r}, x(lo_r))));
  Expr lo_value = lo(Expr::index(0));
  kir::IterVar scale_i = kb.var("s", 1);
  kir::IterVar hi_r = kb.var("r", count);
  Expr hi = kir::max(zero, kir::reduce(kir::ReduceOp::kMax, {hi_r}, x(hi_r)));
  kb.compute(scale, {scale_i}, (hi - lo_value) / 255.0);
  Expr s = scale(Expr::index(0));
  kir::IterVar zp_i = kb.var("z", 1);
  Expr zp_real = kir::max(kir::min(kir::unary(kir::UnaryOp::kRound, zero - lo_value / s), 255.0), 0.0);
  kb.compute(zero_point, {zp_i}, zp_real);

  if (ctx.hasOutput(1)) {
    LowerContext::Buffer scale_out = ctx.output(1, {1});
    kir::IterVar i = kb.var("o", 1);
    kb.compute(scale_out, {i}, scale(i));
  }
  if (ctx.hasOutput(2)) {
    LowerContext::Buffer zp_out = ctx.output(2, {1});
    kir::IterVar i = kb.var("o", 1);
    kb.compute(zp_out, {i}, quantizeTo(DType::kUInt8, zero_point(i), Expr()));
  }
  LowerContext::Buffer y = ctx.output(0, {count});
  kir::IterVar i = kb.var("i", count);
  kb.compute(y, {i}, quantizeTo(DType::kUInt8, x(i) / s, zero_point(Expr::index(0))));
  return Status::ok();
}

}  // namespace

void registerQuantizeOps(OpRegistry& registry) {
  registry.add(OpSchema{"",
                        "QuantizeLinear",
                        {10, 13, 19, 21},
                        {{"axis", Kind::kInt},
                         {"saturate", Kind::kInt},
                         {"block_size", Kind::kInt},
                         {"output_dtype", Kind::kInt}},
                        inferQuantize,
                        lowerQuantize});
  registry.add(OpSchema{"",
                        "DequantizeLinear",
                        {10, 13, 19, 21},
                        {{"axis", Kind::kInt}, {"block_size", Kind::kInt}},
                        inferDequantize,
                        lowerDequantize});
  registry.add(OpSchema{"", "DynamicQuantizeLinear", {11}, {}, inferDynamicQuantize, lowerDynamicQuantize});
}

}  // namespace kiln::ops
