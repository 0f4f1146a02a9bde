// Comparisons and logic: Equal/Greater/Less/GreaterOrEqual/LessOrEqual (bool
// results), And/Or/Xor/Not on bools, BitShift and the Bitwise ops on
// integers, Where, IsNaN and IsInf. All broadcast like numpy; the opset-1
// binaries keep their `broadcast`/`axis` attributes.
#include <limits>

#include "compiler/ops/math_exprs.h"

namespace kiln::ops {
namespace {

using Kind = ir::Attribute::Kind;
using kir::Expr;

// ---- Input dtypes ----------------------------------------------------------------

// Which dtypes an input accepts at the node's opset; nullptr when `dtype` is
// accepted, otherwise what was expected, for the message.
using DTypeRule = const char* (*)(ir::DType dtype, int opset);

const char* boolOnly(ir::DType dtype, int) { return dtype == ir::DType::kBool ? nullptr : "bool"; }
const char* unsignedOnly(ir::DType dtype, int) {
  return isUnsignedInteger(dtype) ? nullptr : "an unsigned integer type";
}
const char* integerOnly(ir::DType dtype, int) { return ir::isInteger(dtype) ? nullptr : "an integer type"; }
const char* floatOnly(ir::DType dtype, int) { return ir::isFloat(dtype) ? nullptr : "a float type"; }

// Equal: bool, int32 and int64 until opset 11 added every numeric type.
const char* equalTypes(ir::DType dtype, int opset) {
  if (opset >= 11)
    return ir::isInteger(dtype) || ir::isFloat(dtype) || dtype == ir::DType::kBool ? nullptr : "a numeric or bool type";
  bool ok = dtype == ir::DType::kBool || dtype == ir::DType::kInt32 || dtype == ir::DType::kInt64;
  return ok ? nullptr : "bool, int32 or int64 (before opset 11)";
}

// Greater and Less: floats until opset 9 added the integers.
const char* orderedTypes(ir::DType dtype, int opset) {
  if (opset >= 9) return ir::isInteger(dtype) || ir::isFloat(dtype) ? nullptr : "a numeric type";
  return floatOnly(dtype, opset);
}

Status expectDTypeRule(const NodeView& node, size_t i, DTypeRule rule) {
  ir::DType dtype = node.inputType(i).dtype;
  if (dtype == ir::DType::kString)
    return node.unsupportedError("string tensors are not supported (input " + std::to_string(i) + ")");
  const char* expected = rule(dtype, node.opset());
  if (!expected) return Status::ok();
  return node.error("input " + std::to_string(i) + " has dtype " + std::string(ir::name(dtype)) + ", expected " +
                    expected);
}

// ---- Binary ops ------------------------------------------------------------------

// BitShift's operation comes from its `direction` attribute.
Expected<kir::BinaryOp> bitShiftOp(const NodeView& node) {
  std::string direction = node.attrString("direction", "");
  if (direction == "LEFT") return kir::BinaryOp::kShl;
  if (direction == "RIGHT") return kir::BinaryOp::kShr;
  return node.error("attribute direction is '" + direction + "', expected 'LEFT' or 'RIGHT'");
}

struct BinarySpec {
  std::string_view name;
  std::vector<int> versions;
  kir::BinaryOp op;
  DTypeRule dtypes;
  bool legacy_attributes;  // opset 1 had broadcast/axis
  std::vector<AttrSpec> attributes = {};
  Expected<kir::BinaryOp> (*op_from_attributes)(const NodeView&) = nullptr;  // overrides `op`
};

Expected<kir::BinaryOp> binaryOp(const NodeView& node, const BinarySpec& spec) {
  return spec.op_from_attributes ? spec.op_from_attributes(node) : Expected<kir::BinaryOp>(spec.op);
}

const std::vector<BinarySpec>& binaryOps() {
  using kir::BinaryOp;
  static const std::vector<BinarySpec> ops = {
      {"Equal", {1, 7, 11, 13, 19}, BinaryOp::kEq, equalTypes, true},
      {"Greater", {1, 7, 9, 13}, BinaryOp::kGt, orderedTypes, true},
      {"Less", {1, 7, 9, 13}, BinaryOp::kLt, orderedTypes, true},
      {"GreaterOrEqual", {12, 16}, BinaryOp::kGe, orderedTypes, false},
      {"LessOrEqual", {12, 16}, BinaryOp::kLe, orderedTypes, false},
      {"And", {1, 7}, BinaryOp::kAnd, boolOnly, true},
      {"Or", {1, 7}, BinaryOp::kOr, boolOnly, true},
      {"Xor", {1, 7}, BinaryOp::kXor, boolOnly, true},
      {"BitwiseAnd", {18}, BinaryOp::kAnd, integerOnly, false},
      {"BitwiseOr", {18}, BinaryOp::kOr, integerOnly, false},
      {"BitwiseXor", {18}, BinaryOp::kXor, integerOnly, false},
      // Shifts of at least the bit width give 0.
      {"BitShift", {11}, BinaryOp::kShl, unsignedOnly, false, {{"direction", Kind::kString, true}}, bitShiftOp},
  };
  return ops;
}

Status inferBinary(InferContext& ctx, const BinarySpec& spec) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 2, 2));
  KILN_RETURN_IF_ERROR(expectDTypeRule(ctx, 0, spec.dtypes));
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 0, 1, "B"));
  KILN_RETURN_IF_ERROR(binaryOp(ctx, spec).status());
  ir::DType out = kir::isComparison(spec.op) ? ir::DType::kBool : ctx.inputType(0).dtype;
  return inferBroadcastOutput(ctx, out, spec.legacy_attributes ? BroadcastRule::kLegacyBefore7 : BroadcastRule::kNumpy);
}

Status lowerBinary(LowerContext& ctx, const BinarySpec& spec) {
  KILN_ASSIGN_OR_RETURN(kir::BinaryOp op, binaryOp(ctx, spec));
  ElementFn fn = [op](std::span<const Expr> v, const NodeView&) { return kir::binary(op, v[0], v[1]); };
  return lowerBroadcastElementwise(ctx, fn,
                                   spec.legacy_attributes ? BroadcastRule::kLegacyBefore7 : BroadcastRule::kNumpy);
}

// ---- Unary ops -------------------------------------------------------------------

struct UnarySpec {
  std::string_view name;
  std::vector<int> versions;
  DTypeRule dtypes;
  std::vector<AttrSpec> attributes;
  bool bool_result;
  Expr (*fn)(Expr x, const NodeView& node);
};

Expr isInf(Expr x, const NodeView& node) {
  bool negative = node.attrInt("detect_negative", 1) != 0;
  bool positive = node.attrInt("detect_positive", 1) != 0;
  Expr inf = Expr::constant(x.dtype(), std::numeric_limits<double>::infinity());
  if (negative && positive) return kir::eq(kir::abs(x), inf);
  if (positive) return kir::eq(x, inf);
  if (negative) return kir::eq(x, -inf);
  return Expr::constant(ir::DType::kBool, 0);
}

const std::vector<UnarySpec>& unaryOps() {
  static const std::vector<UnarySpec> ops = {
      {"Not", {1}, boolOnly, {}, false, [](Expr x, const NodeView&) { return kir::unary(kir::UnaryOp::kNot, x); }},
      {"BitwiseNot",
       {18},
       integerOnly,
       {},
       false,
       [](Expr x, const NodeView&) { return kir::unary(kir::UnaryOp::kNot, x); }},
      {"IsNaN",
       {9, 13, 20},
       floatOnly,
       {},
       true,
       [](Expr x, const NodeView&) { return kir::binary(kir::BinaryOp::kNe, x, x); }},
      {"IsInf", {10, 20}, floatOnly, {{"detect_negative", Kind::kInt}, {"detect_positive", Kind::kInt}}, true, isInf},
  };
  return ops;
}

Status inferUnary(InferContext& ctx, const UnarySpec& spec) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  KILN_ASSIGN_OR_RETURN(ir::Shape shape, inputShape(ctx, 0, "X"));
  KILN_RETURN_IF_ERROR(expectDTypeRule(ctx, 0, spec.dtypes));
  ctx.setOutputType(0, {spec.bool_result ? ir::DType::kBool : ctx.inputType(0).dtype, shape});
  return Status::ok();
}

// ---- Where -----------------------------------------------------------------------

// The condition is ordinary run-time data; X and Y share any dtype.
Status inferWhere(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 3, 3));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Shape> shapes, presentInputShapes(ctx, 3));
  if (ctx.inputType(0).dtype != ir::DType::kBool)
    return ctx.error("condition has dtype " + std::string(ir::name(ctx.inputType(0).dtype)) +
                     ", expected bool (input 0)");
  if (ctx.inputType(1).dtype == ir::DType::kString)
    return ctx.unsupportedError("string tensors are not supported (input 1)");
  KILN_RETURN_IF_ERROR(expectSameDType(ctx, 1, 2, "Y"));
  return inferBroadcastOutput(ctx, ctx.inputType(1).dtype, BroadcastRule::kNumpy);
}

Expr where(std::span<const Expr> v, const NodeView&) { return kir::select(v[0], v[1], v[2]); }

}  // namespace

void registerLogicOps(OpRegistry& registry) {
  for (const BinarySpec& spec : binaryOps()) {
    std::vector<AttrSpec> attributes = spec.attributes;
    if (spec.legacy_attributes) attributes = legacyBroadcastAttributes();
    registry.add(OpSchema{"", spec.name, spec.versions, std::move(attributes),
                          [&spec](InferContext& ctx) { return inferBinary(ctx, spec); },
                          [&spec](LowerContext& ctx) { return lowerBinary(ctx, spec); }});
  }
  for (const UnarySpec& spec : unaryOps()) {
    registry.add(OpSchema{
        "", spec.name, spec.versions, spec.attributes, [&spec](InferContext& ctx) { return inferUnary(ctx, spec); },
        [&spec](LowerContext& ctx) {
          ElementFn fn = [&spec](std::span<const Expr> v, const NodeView& node) { return spec.fn(v[0], node); };
          return lowerBroadcastElementwise(ctx, fn, BroadcastRule::kNumpy);
        }});
  }
  registry.add(OpSchema{"", "Where", {9, 16}, {}, inferWhere, [](LowerContext& ctx) {
                          return lowerBroadcastElementwise(ctx, where, BroadcastRule::kNumpy);
                        }});
}

}  // namespace kiln::ops
