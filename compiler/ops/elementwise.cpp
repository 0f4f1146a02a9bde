// Elementwise ops: one output element is a function of the elements of the
// inputs at the same (broadcast) position.
#include <limits>
#include <optional>

#include "compiler/lower/lower_context.h"
#include "compiler/ops/broadcast.h"
#include "compiler/ops/infer_checks.h"
#include "compiler/ops/kernel_exprs.h"
#include "compiler/ops/math_exprs.h"
#include "compiler/ops/run_time_shapes.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// ---- Binary arithmetic -------------------------------------------------------

struct BinarySpec {
  std::string_view name;
  kir::BinaryOp op;
};
constexpr BinarySpec kBinaryOps[] = {
    {"Add", kir::BinaryOp::kAdd},
    {"Sub", kir::BinaryOp::kSub},
    {"Mul", kir::BinaryOp::kMul},
    {"Div", kir::BinaryOp::kDiv},  // integer division truncates toward zero, like C and ONNX Runtime
};

Expected<ir::Shape> shapeOfB(const NodeView& ctx, const ir::Shape& a, const ir::Shape& b) {
  if (ctx.opset() < 7) return legacyViewOfB(ctx, a, b);
  return b;
}

Status inferBinary(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_ASSIGN_OR_RETURN(ir::Shape a, inputShape(ctx, 0, "A"));
  KILN_ASSIGN_OR_RETURN(ir::Shape b, inputShape(ctx, 1, "B"));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "A", DTypeClass::kNumeric));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "B"));
  KILN_ASSIGN_OR_RETURN(ir::Shape b_view, shapeOfB(ctx, a, b));
  std::vector<ir::Shape> shapes = {a, b_view};
  Expected<ir::Shape> out = broadcastShapes(shapes);
  if (!out) return ctx.error(out.status().message());
  ctx.setOutputType(0, {ctx.inputType(0).dtype, out.take()});
  return Status::ok();
}

Status lowerBinary(LowerContext& ctx, kir::BinaryOp op) {
  if (hasRunTimeShape(ctx)) {
    if (ctx.opset() < 7)
      return ctx.unsupportedError("inputs with shapes computed at run time take numpy broadcasting only (opset " +
                                  std::to_string(ctx.opset()) + ")");
    return lowerRunTimeElementwise(ctx, {0, 1}, 1, [op](std::span<const Expr> v) {
      return std::vector<Expr>{kir::binary(op, v[0], v[1])};
    });
  }
  std::vector<int64_t> out_dims = ctx.outputDims(0);
  std::vector<int64_t> b_dims = ctx.inputDims(1);
  if (ctx.opset() < 7) {
    ir::Shape a = ir::makeShape(ctx.inputDims(0));
    KILN_ASSIGN_OR_RETURN(ir::Shape view, legacyViewOfB(ctx, a, ir::makeShape(b_dims)));
    b_dims = *ir::knownDims(view);
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer a = ctx.input(0);
  LowerContext::Buffer b = ctx.input(1, b_dims);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(out_dims);
  std::vector<Expr> index = asExprs(axes);
  Expr lhs = toCompute(a.load(broadcastIndex(index, a.shape())));
  Expr rhs = toCompute(b.load(broadcastIndex(index, b.shape())));
  kb.compute(y, axes, kir::cast(y.dtype(), kir::binary(op, lhs, rhs)));
  return Status::ok();
}

// ---- Unary ops -----------------------------------------------------------------

// The element function, applied to the input element in its compute dtype.
using UnaryFn = Expr (*)(Expr x, const NodeView& node);

struct UnarySpec {
  std::string_view name;
  std::vector<int> versions;
  DTypeClass dtypes;
  std::vector<AttrSpec> attributes;
  UnaryFn fn;
};

// `consumed_inputs` (opset 1) was an in-place hint for the old runtimes;
// it has no effect on the result.
const AttrSpec kConsumedInputs{"consumed_inputs", Kind::kInts};

const std::vector<UnarySpec>& unaryOps() {
  static const std::vector<UnarySpec> ops = {
      {"Relu", {1, 6, 13, 14}, DTypeClass::kNumeric, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::max(x, 0.0); }},
      {"Sigmoid", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs},
       [](Expr x, const NodeView&) {
         Expr one = Expr::constant(x.dtype(), 1.0);
         return one / (one + kir::exp(-x));
       }},
      {"Tanh", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::tanh(x); }},
      {"Exp", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::exp(x); }},
      {"Log", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::log(x); }},
      {"Sqrt", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::sqrt(x); }},
      {"Neg", {1, 6, 13}, DTypeClass::kNumeric, {kConsumedInputs}, [](Expr x, const NodeView&) { return -x; }},
      {"Abs", {1, 6, 13}, DTypeClass::kNumeric, {kConsumedInputs},
       [](Expr x, const NodeView&) { return kir::abs(x); }},
      {"LeakyRelu", {1, 6, 16}, DTypeClass::kFloat, {kConsumedInputs, {"alpha", Kind::kFloat}},
       [](Expr x, const NodeView& node) {
         return kir::select(x < Expr::constant(x.dtype(), 0), x * node.attrFloat("alpha", 0.01f), x);
       }},
      // Versions 14 and 16 add sequence and optional types; for tensors all
      // versions are the same copy.
      {"Identity", {1, 13, 14, 16}, DTypeClass::kAnyData, {}, [](Expr x, const NodeView&) { return x; }},
  };
  return ops;
}

Status inferUnary(InferContext& ctx, DTypeClass dtypes) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", dtypes));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "X"));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, shape});
  return Status::ok();
}

Status lowerUnary(LowerContext& ctx, UnaryFn fn) {
  if (hasRunTimeShape(ctx))
    return lowerRunTimeElementwise(ctx, {0}, 1,
                                   [&](std::span<const Expr> v) { return std::vector<Expr>{fn(v[0], ctx)}; });
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, kir::cast(y.dtype(), fn(toCompute(x.load(asExprs(axes))), ctx)));
  return Status::ok();
}

// ---- Clip ----------------------------------------------------------------------

// Opset 11 moved the bounds from attributes to optional inputs 1 and 2, which
// may be computed at run time; an omitted bound does not clip.
struct ClipBound {
  size_t input;
  const char* attribute;
};
constexpr ClipBound kClipBounds[] = {{1, "min"}, {2, "max"}};

Status inferClip(InferContext& ctx) {
  bool bounds_are_inputs = ctx.opset() >= 11;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, bounds_are_inputs ? 3 : 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input", ctx.opset() >= 12 ? DTypeClass::kNumeric : DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "input"));
  for (const ClipBound& bound : kClipBounds) {
    if (bounds_are_inputs && ctx.hasAttr(bound.attribute))
      return ctx.error(std::string("attribute '") + bound.attribute + "' is input " + std::to_string(bound.input) +
                       " since opset 11");
    if (!bounds_are_inputs || !ctx.hasInput(bound.input)) continue;
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, bound.input, bound.attribute));
    KILN_ASSIGN_OR_RETURN(ir::Shape bound_shape, inputShape(ctx, bound.input, bound.attribute));
    ir::Dim count = productDim(bound_shape, 0, bound_shape.size());
    if (count.isKnown() && count.value != 1)
      return ctx.error(std::string(bound.attribute) + " must be a scalar, got shape " + ir::toString(bound_shape) +
                       " (input " + std::to_string(bound.input) + ")");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, shape});
  return Status::ok();
}

std::optional<Expr> clipBound(LowerContext& ctx, const ClipBound& bound, ir::DType dtype) {
  if (ctx.opset() < 11) {
    if (!ctx.hasAttr(bound.attribute)) return std::nullopt;
    return Expr::constant(dtype, ctx.attrFloat(bound.attribute, 0));
  }
  if (!ctx.hasInput(bound.input)) return std::nullopt;
  if (const ir::Tensor* value = ctx.constantInput(bound.input)) return tensorElement(*value, 0, dtype);
  LowerContext::Buffer buffer = ctx.input(bound.input);
  return toCompute(buffer.load(std::vector<Expr>(buffer.rank(), Expr::index(0))));
}

Status lowerClip(LowerContext& ctx) {
  if (hasRunTimeShape(ctx)) {
    // The bounds are scalars: loaded by the element kernel, not broadcast.
    return lowerRunTimeElementwise(ctx, {0}, 1, [&](std::span<const Expr> v) {
      Expr value = v[0];
      if (std::optional<Expr> lo = clipBound(ctx, kClipBounds[0], value.dtype())) value = kir::max(value, *lo);
      if (std::optional<Expr> hi = clipBound(ctx, kClipBounds[1], value.dtype())) value = kir::min(value, *hi);
      return std::vector<Expr>{value};
    });
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  Expr value = toCompute(x.load(asExprs(axes)));
  ir::DType dtype = value.dtype();
  // numpy.clip order: max with the lower bound first, so min > max yields max.
  if (std::optional<Expr> lo = clipBound(ctx, kClipBounds[0], dtype)) value = kir::max(value, *lo);
  if (std::optional<Expr> hi = clipBound(ctx, kClipBounds[1], dtype)) value = kir::min(value, *hi);
  kb.compute(y, axes, kir::cast(y.dtype(), value));
  return Status::ok();
}

}  // namespace

void registerElementwiseOps(OpRegistry& registry) {
  for (const BinarySpec& spec : kBinaryOps) {
    kir::BinaryOp op = spec.op;
    registry.add(OpSchema{
        "", spec.name, {1, 6, 7, 13, 14},
        {{"broadcast", Kind::kInt}, {"axis", Kind::kInt}, kConsumedInputs},
        inferBinary,
        [op](LowerContext& ctx) { return lowerBinary(ctx, op); }});
  }
  for (const UnarySpec& spec : unaryOps()) {
    DTypeClass dtypes = spec.dtypes;
    UnaryFn fn = spec.fn;
    registry.add(OpSchema{"", spec.name, spec.versions, spec.attributes,
                          [dtypes](InferContext& ctx) { return inferUnary(ctx, dtypes); },
                          [fn](LowerContext& ctx) { return lowerUnary(ctx, fn); }});
  }
  registry.add(OpSchema{"", "Clip", {1, 6, 11, 12, 13},
                        {{"min", Kind::kFloat}, {"max", Kind::kFloat}, kConsumedInputs},
                        inferClip, lowerClip});
}

}  // namespace kiln::ops
