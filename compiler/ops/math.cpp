// Math ops beyond the basic arithmetic of elementwise.cpp: rounding and
// trigonometric functions, activations (Elu ... Gelu), PRelu, Pow, Mod, the
// variadic Max/Min/Sum/Mean, and Dropout as the identity it is in inference.
#include <cmath>
#include <numbers>

#include "compiler/ops/math_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// ---- Unary ops -----------------------------------------------------------------

Expr constantLike(const Expr& x, double value) { return Expr::constant(x.dtype(), value); }
Expr zeroLike(const Expr& x) { return constantLike(x, 0); }

// log(1 + exp(x)) without overflowing for large x.
Expr softplus(Expr x) {
  Expr one = constantLike(x, 1);
  return kir::max(x, 0.0) + kir::log(one + kir::exp(-kir::abs(x)));
}

// Integer inputs of the ops that accept them (Erf, Shrink) compute in float64
// and truncate toward zero on the way back, as a C cast would.
Expr asFloat(Expr x) { return ir::isFloat(x.dtype()) ? x : kir::cast(ir::DType::kFloat64, std::move(x)); }

Expr elu(Expr x, const NodeView& node) {
  double alpha = node.attrFloat("alpha", 1.0f);
  return kir::select(x < zeroLike(x), alpha * (kir::exp(x) - 1.0), x);
}

Expr selu(Expr x, const NodeView& node) {
  double alpha = node.attrFloat("alpha", 1.67326319217681884765625f);
  double gamma = node.attrFloat("gamma", 1.05070102214813232421875f);
  return kir::select(x <= zeroLike(x), gamma * (alpha * kir::exp(x) - alpha), gamma * x);
}

Expr celu(Expr x, const NodeView& node) {
  double alpha = node.attrFloat("alpha", 1.0f);
  return kir::max(x, 0.0) + kir::min(alpha * (kir::exp(x / alpha) - 1.0), 0.0);
}

Expr hardSigmoid(Expr x, const NodeView& node) {
  double alpha = node.attrFloat("alpha", 0.2f);
  double beta = node.attrFloat("beta", 0.5f);
  return kir::max(kir::min(x * alpha + beta, 1.0), 0.0);
}

Expr shrink(Expr x, const NodeView& node) {
  x = asFloat(std::move(x));
  double bias = node.attrFloat("bias", 0.0f);
  double lambd = node.attrFloat("lambd", 0.5f);
  return kir::select(x < constantLike(x, -lambd), x + bias,
                     kir::select(x > constantLike(x, lambd), x - bias, zeroLike(x)));
}

// sign(0) = 0 and sign(NaN) = NaN: both fall through to x itself.
Expr sign(Expr x, const NodeView&) {
  Expr positive = kir::select(x > zeroLike(x), constantLike(x, 1), x);
  if (isUnsignedInteger(x.dtype())) return positive;
  return kir::select(x < zeroLike(x), constantLike(x, -1), positive);
}

Expr gelu(Expr x, const NodeView& node) {
  if (node.attrString("approximate", "none") == "tanh") {
    double k = std::sqrt(2.0 / std::numbers::pi);
    return 0.5 * x * (1.0 + kir::tanh(k * (x + 0.044715 * x * x * x)));
  }
  return 0.5 * x * (1.0 + kir::unary(kir::UnaryOp::kErf, x * (1.0 / std::numbers::sqrt2)));
}

Status checkGelu(const NodeView& node) {
  std::string approximate = node.attrString("approximate", "none");
  if (approximate == "none" || approximate == "tanh") return Status::ok();
  return node.error("attribute approximate is '" + approximate + "', expected 'none' or 'tanh'");
}

using UnaryFn = Expr (*)(Expr x, const NodeView& node);
using AttrCheck = Status (*)(const NodeView& node);

template <kir::UnaryOp op>
Expr unaryOf(Expr x, const NodeView&) {
  return kir::unary(op, asFloat(std::move(x)));
}

struct UnarySpec {
  std::string_view name;
  std::vector<int> versions;
  DTypeClass dtypes;
  std::vector<AttrSpec> attributes;
  UnaryFn fn;
  AttrCheck check = nullptr;
};

// `consumed_inputs` (opset 1) was an in-place hint for the old runtimes.
const AttrSpec kConsumedInputs{"consumed_inputs", Kind::kInts};

const std::vector<UnarySpec>& unaryOps() {
  using kir::UnaryOp;
  static const std::vector<UnarySpec> ops = {
      {"Ceil", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs}, unaryOf<UnaryOp::kCeil>},
      {"Floor", {1, 6, 13}, DTypeClass::kFloat, {kConsumedInputs}, unaryOf<UnaryOp::kFloor>},
      {"Round", {11}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kRound>},  // ties to even
      {"Reciprocal",
       {1, 6, 13},
       DTypeClass::kFloat,
       {kConsumedInputs},
       [](Expr x, const NodeView&) { return 1.0 / x; }},
      {"Sign", {9, 13}, DTypeClass::kNumeric, {}, sign},
      {"Sin", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kSin>},
      {"Cos", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kCos>},
      {"Tan", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kTan>},
      {"Asin", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAsin>},
      {"Acos", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAcos>},
      {"Atan", {7}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAtan>},
      {"Sinh", {9}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kSinh>},
      {"Cosh", {9}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kCosh>},
      {"Asinh", {9}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAsinh>},
      {"Acosh", {9}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAcosh>},
      {"Atanh", {9}, DTypeClass::kFloat, {}, unaryOf<UnaryOp::kAtanh>},
      {"Erf", {9, 13}, DTypeClass::kNumeric, {}, unaryOf<UnaryOp::kErf>},
      {"Softplus", {1}, DTypeClass::kFloat, {}, [](Expr x, const NodeView&) { return softplus(x); }},
      {"Softsign", {1}, DTypeClass::kFloat, {}, [](Expr x, const NodeView&) { return x / (1.0 + kir::abs(x)); }},
      {"Elu", {1, 6}, DTypeClass::kFloat, {{"alpha", Kind::kFloat}, kConsumedInputs}, elu},
      {"Selu", {1, 6}, DTypeClass::kFloat, {{"alpha", Kind::kFloat}, {"gamma", Kind::kFloat}, kConsumedInputs}, selu},
      {"Celu", {12}, DTypeClass::kFloat, {{"alpha", Kind::kFloat}}, celu},
      {"HardSigmoid",
       {1, 6},
       DTypeClass::kFloat,
       {{"alpha", Kind::kFloat}, {"beta", Kind::kFloat}, kConsumedInputs},
       hardSigmoid},
      {"HardSwish",
       {14},
       DTypeClass::kFloat,
       {},
       [](Expr x, const NodeView&) { return x * kir::max(kir::min(x * (1.0 / 6.0) + 0.5, 1.0), 0.0); }},
      {"ThresholdedRelu",
       {10},
       DTypeClass::kFloat,
       {{"alpha", Kind::kFloat}},
       [](Expr x, const NodeView& node) {
         return kir::select(x > constantLike(x, node.attrFloat("alpha", 1.0f)), x, zeroLike(x));
       }},
      {"Shrink", {9}, DTypeClass::kNumeric, {{"bias", Kind::kFloat}, {"lambd", Kind::kFloat}}, shrink},
      {"Mish", {18}, DTypeClass::kFloat, {}, [](Expr x, const NodeView&) { return x * kir::tanh(softplus(x)); }},
      {"Gelu", {20}, DTypeClass::kFloat, {{"approximate", Kind::kString}}, gelu, checkGelu},
  };
  return ops;
}

Status inferUnary(InferContext& ctx, const UnarySpec& spec) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", spec.dtypes));
  if (spec.check) KILN_RETURN_IF_ERROR(spec.check(ctx));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "X"));
  ctx.setOutputType(0, {ctx.inputType(0).dtype, shape});
  return Status::ok();
}

Status lowerUnary(LowerContext& ctx, UnaryFn fn) {
  return lowerBroadcastElementwise(
      ctx, [fn](std::span<const Expr> x, const NodeView& node) { return fn(x[0], node); }, BroadcastRule::kNumpy);
}

// ---- PRelu -----------------------------------------------------------------------

// The slope broadcasts to X in one direction (opset 7+). Before, a slope of
// one value was shared and a 1-D slope of C values was per channel (dim 1).
Status inferPRelu(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", ctx.opset() >= 9 ? DTypeClass::kNumeric : DTypeClass::kFloat));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "slope"));
  KILN_ASSIGN_OR_RETURN(ir::Shape x, inputShape(ctx, 0, "X"));
  KILN_ASSIGN_OR_RETURN(ir::Shape slope, inputShape(ctx, 1, "slope"));
  ir::Shape view = ctx.opset() < 7 ? channelViewOfSlope(x, slope) : slope;
  if (!broadcastsTo(view, x)) {
    std::string channels = ctx.opset() < 7 ? " along dim 1" : "";
    return ctx.error("slope " + ir::toString(slope) + " does not broadcast to X " + ir::toString(x) + channels +
                     " (input 1)");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, x});
  return Status::ok();
}

Expr prelu(std::span<const Expr> v, const NodeView&) {
  const Expr& x = v[0];
  return kir::select(x < zeroLike(x), v[1] * x, x);
}

// ---- Pow -------------------------------------------------------------------------

// Since opset 12 the exponent may have its own dtype (any numeric type); the
// result has the base's dtype. Float bases compute in float32 when both sides
// fit in it; everything else (integer bases, float64, integer exponents)
// computes in float64 and converts back, truncating toward zero for integer
// bases (2 ** -1 is 0, like a C cast of pow's result).
Status inferPow(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  bool mixed = ctx.opset() >= 12;
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "X", mixed ? DTypeClass::kNumeric : DTypeClass::kFloat));
  if (mixed) {
    KILN_RETURN_IF_ERROR(expectDType(ctx, 1, "Y", DTypeClass::kNumeric));
    ir::DType base = ctx.inputType(0).dtype;
    if (ir::isInteger(base) && base != ir::DType::kInt32 && base != ir::DType::kInt64)
      return ctx.error("X has dtype " + std::string(ir::name(base)) +
                       ", expected a float type, int32 or int64 (input 0)");
  } else {
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "Y"));
  }
  return inferBroadcastOutput(ctx, ctx.inputType(0).dtype, BroadcastRule::kLegacyBefore7);
}

Expr pow(std::span<const Expr> v, const NodeView&) {
  auto narrow = [](ir::DType t) { return ir::isFloat(t) && t != ir::DType::kFloat64; };
  ir::DType compute = narrow(v[0].dtype()) && narrow(v[1].dtype()) ? ir::DType::kFloat32 : ir::DType::kFloat64;
  return kir::binary(kir::BinaryOp::kPow, kir::cast(compute, v[0]), kir::cast(compute, v[1]));
}

// ---- Mod -------------------------------------------------------------------------

// fmod=0 is Python's integer %: the result takes the divisor's sign. fmod=1
// is C's fmod/%, the sign of the dividend; floats require it. Integer x % 0
// is 0 (the kernel IR never traps on run-time data).
Status inferMod(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "A", DTypeClass::kNumeric));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "B"));
  int64_t fmod = ctx.attrInt("fmod", 0);
  if (fmod != 0 && fmod != 1) return ctx.error("attribute fmod is " + std::to_string(fmod) + ", expected 0 or 1");
  if (fmod == 0 && ir::isFloat(ctx.inputType(0).dtype))
    return ctx.error("fmod=0 is only defined for integers; set fmod=1 for " +
                     std::string(ir::name(ctx.inputType(0).dtype)) + " inputs");
  return inferBroadcastOutput(ctx, ctx.inputType(0).dtype, BroadcastRule::kNumpy);
}

Expr mod(std::span<const Expr> v, const NodeView& node) {
  const Expr& a = v[0];
  const Expr& b = v[1];
  Expr remainder = a % b;
  if (node.attrInt("fmod", 0) == 1 || isUnsignedInteger(a.dtype())) return remainder;
  Expr zero = zeroLike(a);
  Expr signs_differ = kir::binary(kir::BinaryOp::kNe, remainder < zero, b < zero);
  Expr adjust = kir::binary(kir::BinaryOp::kNe, remainder, zero) && signs_differ;
  return kir::select(adjust, remainder + b, remainder);
}

// ---- Max, Min, Sum, Mean ---------------------------------------------------------

struct VariadicSpec {
  std::string_view name;
  std::vector<int> versions;
  kir::BinaryOp combine;
  bool mean;
  bool integers_since_12;  // Max and Min accept every numeric type since opset 12
};

const VariadicSpec kVariadicOps[] = {
    {"Max", {1, 6, 8, 12, 13}, kir::BinaryOp::kMax, false, true},
    {"Min", {1, 6, 8, 12, 13}, kir::BinaryOp::kMin, false, true},
    {"Sum", {1, 6, 8, 13}, kir::BinaryOp::kAdd, false, false},
    {"Mean", {1, 6, 8, 13}, kir::BinaryOp::kAdd, true, false},
};

Status inferVariadic(InferContext& ctx, const VariadicSpec& spec) {
  if (ctx.numInputs() == 0) return ctx.error("expects at least 1 input, got 0");
  DTypeClass dtypes = spec.integers_since_12 && ctx.opset() >= 12 ? DTypeClass::kNumeric : DTypeClass::kFloat;
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "input 0", dtypes));
  for (size_t i = 1; i < ctx.numInputs(); ++i) {
    KILN_RETURN_IF_ERROR(expectDType(ctx, i, "input " + std::to_string(i), dtypes));
    KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, i, "input " + std::to_string(i)));
  }
  return inferBroadcastOutput(ctx, ctx.inputType(0).dtype, BroadcastRule::kSameBefore8);
}

Expr variadic(std::span<const Expr> v, kir::BinaryOp combine, bool mean) {
  Expr acc = combinePairwise(combine, std::vector<Expr>(v.begin(), v.end()));
  return mean ? acc / static_cast<double>(v.size()) : acc;
}

// ---- Dropout ---------------------------------------------------------------------

// Kiln compiles deterministic inference: Dropout passes its input through
// and its optional mask is all true (all ones before opset 10, when the mask
// had the data's dtype). Opset 12 made ratio and training_mode inputs; the
// op stays deterministic unless training_mode is true and ratio > 0 (then it
// draws a random mask). A constant true training_mode with a constant
// nonzero ratio (or the default 0.5) is refused at compile time; any other
// mix of run-time values compiles, and a run that sets training_mode with
// ratio > 0 stops with a check naming the node. The old `is_test`
// attribute is ignored.

// ratio and training_mode are scalars (one element: a [1] tensor is accepted).
Status expectOneElement(const NodeView& ctx, size_t i, std::string_view role) {
  const std::optional<ir::Shape>& shape = ctx.inputType(i).shape;
  if (!shape) return Status::ok();
  ir::Dim count = productDim(*shape, 0, shape->size());
  if (count.isKnown() && count.value != 1)
    return ctx.error(std::string(role) + " must be a scalar, got shape " + ir::toString(*shape) + " (input " +
                     std::to_string(i) + ")");
  return Status::ok();
}

// Whether ratio (input 1, default 0.5) is known to be 0.
bool ratioIsZero(const NodeView& ctx) {
  if (!ctx.hasInput(1)) return false;
  const ir::Tensor* ratio = ctx.constantInput(1);
  return ratio && ratio->elementCount() == 1 && ratio->floatAt(0) == 0;
}

// Whether ratio is known to be above 0: absent (0.5) or a nonzero constant.
bool ratioIsNonZero(const NodeView& ctx) {
  if (!ctx.hasInput(1)) return true;
  const ir::Tensor* ratio = ctx.constantInput(1);
  return ratio && ratio->elementCount() == 1 && ratio->floatAt(0) != 0;
}

// Whether a run may ask for random dropout: training_mode not a constant
// false and ratio not a constant 0.
bool needsTrainingCheck(const NodeView& ctx) {
  if (ctx.opset() < 12 || !ctx.hasInput(2) || ratioIsZero(ctx)) return false;
  const ir::Tensor* training = ctx.constantInput(2);
  return !training || training->intAt(0) != 0;
}

Status inferDropout(InferContext& ctx) {
  bool has_inputs = ctx.opset() >= 12;
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, has_inputs ? 3 : 1));
  KILN_RETURN_IF_ERROR(expectOutputCount(ctx, 2));
  KILN_RETURN_IF_ERROR(expectDType(ctx, 0, "data", DTypeClass::kFloat));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "data"));
  if (has_inputs && ctx.hasInput(1)) {
    KILN_RETURN_IF_ERROR(expectDType(ctx, 1, "ratio", DTypeClass::kFloat));
    KILN_RETURN_IF_ERROR(expectOneElement(ctx, 1, "ratio"));
  }
  if (has_inputs && ctx.hasInput(2)) {
    if (ctx.inputType(2).dtype != ir::DType::kBool)
      return ctx.error("training_mode has dtype " + std::string(ir::name(ctx.inputType(2).dtype)) +
                       ", expected bool (input 2)");
    KILN_RETURN_IF_ERROR(expectOneElement(ctx, 2, "training_mode"));
    const ir::Tensor* training = ctx.constantInput(2);
    if (training && training->intAt(0) != 0 && ratioIsNonZero(ctx))
      return ctx.unsupportedError(
          "training_mode (input 2) is true and ratio is not 0: dropout draws a random mask; Kiln compiles "
          "deterministic inference");
  }
  ctx.setOutputType(0, {ctx.inputType(0).dtype, shape});
  ir::DType mask = ctx.opset() >= 10 ? ir::DType::kBool : ctx.inputType(0).dtype;
  if (ctx.hasOutput(1)) ctx.setOutputType(1, {mask, shape});
  return Status::ok();
}

// A kernel that stops the run when training_mode is true and ratio > 0.
void lowerTrainingCheck(LowerContext& ctx) {
  kir::KernelBuilder& kb = ctx.newKernel("check");
  Expr training = ctx.input(2, {1})(Expr::index(0));
  Expr random = training;
  if (ctx.hasInput(1)) {
    Expr ratio = kir::cast(ir::DType::kFloat64, ctx.input(1, {1})(Expr::index(0)));
    random = training && ratio > Expr::constant(ir::DType::kFloat64, 0);
  }
  kb.check(ctx.addCheck("training_mode (input 2) is true and ratio is above 0: dropout would draw a random mask; "
                        "Kiln compiles deterministic inference, run with training_mode false"),
           kir::unary(kir::UnaryOp::kNot, random));
}

Status lowerDropout(LowerContext& ctx) {
  if (needsTrainingCheck(ctx)) lowerTrainingCheck(ctx);
  if (hasRunTimeShape(ctx)) {
    return lowerRunTimeElementwise(ctx, {0}, 2, [](std::span<const Expr> v) {
      return std::vector<Expr>{v[0], Expr::constant(ir::DType::kBool, 1)};
    });
  }
  kir::KernelBuilder& kb = ctx.newKernel();
  LowerContext::Buffer x = ctx.input(0);
  LowerContext::Buffer y = ctx.output(0);
  std::vector<kir::IterVar> axes = kb.vars(y.shape());
  kb.compute(y, axes, x.load(asExprs(axes)));
  if (ctx.hasOutput(1)) {
    LowerContext::Buffer mask = ctx.output(1);
    kb.compute(mask, axes, Expr::constant(mask.dtype(), 1));
  }
  return Status::ok();
}

}  // namespace

void registerMathOps(OpRegistry& registry) {
  for (const UnarySpec& spec : unaryOps()) {
    registry.add(OpSchema{"", spec.name, spec.versions, spec.attributes,
                          [&spec](InferContext& ctx) { return inferUnary(ctx, spec); },
                          [fn = spec.fn](LowerContext& ctx) { return lowerUnary(ctx, fn); }});
    // Gelu for models whose opset predates 20: what the recognize-gelu pass
    // writes there.
    if (spec.name == "Gelu")
      registry.add(OpSchema{kKilnDomain, spec.name, {1}, spec.attributes,
                            [&spec](InferContext& ctx) { return inferUnary(ctx, spec); },
                            [fn = spec.fn](LowerContext& ctx) { return lowerUnary(ctx, fn); }});
  }
  registry.add(OpSchema{"", "PRelu", {1, 6, 7, 9, 16}, {kConsumedInputs}, inferPRelu, [](LowerContext& ctx) {
                          return lowerBroadcastElementwise(ctx, prelu, BroadcastRule::kChannelsBefore7);
                        }});
  registry.add(OpSchema{"", "Pow", {1, 7, 12, 13, 15}, legacyBroadcastAttributes(), inferPow, [](LowerContext& ctx) {
                          return lowerBroadcastElementwise(ctx, pow, BroadcastRule::kLegacyBefore7);
                        }});
  registry.add(OpSchema{"", "Mod", {10, 13}, {{"fmod", Kind::kInt}}, inferMod, [](LowerContext& ctx) {
                          return lowerBroadcastElementwise(ctx, mod, BroadcastRule::kNumpy);
                        }});
  for (const VariadicSpec& spec : kVariadicOps) {
    registry.add(OpSchema{"",
                          spec.name,
                          spec.versions,
                          {kConsumedInputs},
                          [&spec](InferContext& ctx) { return inferVariadic(ctx, spec); },
                          [&spec](LowerContext& ctx) {
                            ElementFn fn = [&spec](std::span<const Expr> v, const NodeView&) {
                              return variadic(v, spec.combine, spec.mean);
                            };
                            return lowerBroadcastElementwise(ctx, fn, BroadcastRule::kSameBefore8);
                          }});
  }
  registry.add(OpSchema{"",
                        "Dropout",
                        {1, 6, 7, 10, 12, 13},
                        {{"ratio", Kind::kFloat}, {"is_test", Kind::kInt}, {"seed", Kind::kInt}, kConsumedInputs},
                        inferDropout,
                        lowerDropout});
}

}  // namespace kiln::ops
