// Optional ops: Optional, OptionalHasElement, OptionalGetElement.
//
// An optional holds a tensor or a sequence, or nothing. Like sequences
// (sequence.cpp), optionals are resolved at compile time: where an optional
// is made by an Optional node, whether it holds a value is known, so
// OptionalHasElement is a constant and OptionalGetElement is the value
// (passes/expand_containers.cpp). An optional graph input's presence is a
// run-time flag (run_time_containers.cpp lowers OptionalHasElement and
// OptionalGetElement over it), and so is that of an optional sequence an
// Optional node makes where expansion leaves it (an If branch's result).
#include <string>

#include "compiler/ir/type_attribute.h"
#include "compiler/lower/lower_context.h"
#include "compiler/ops/containers.h"
#include "compiler/ops/infer_checks.h"

namespace kiln::ops {

std::optional<bool> staticPresence(const ir::Value* optional) {
  for (const ir::Value* v = optional; v;) {
    const ir::Node* p = v->producer;
    if (!p || !(p->domain.empty() || p->domain == "ai.onnx")) return std::nullopt;
    if (p->op_type == "Optional") return p->input(0) != nullptr;
    if (p->op_type != "Identity") return std::nullopt;
    v = p->input(0);
  }
  return std::nullopt;
}

namespace {

using ir::DType;
using ir::ValueKind;

bool isOptional(ValueKind kind) { return kind == ValueKind::kOptionalTensor || kind == ValueKind::kOptionalSequence; }

// The element type an Optional's 'type' attribute (a TypeProto, imported
// as ir/type_attribute.h lays it out) names; nullopt when it has none.
Expected<std::optional<ir::TensorType>> declaredElementType(const InferContext& ctx) {
  const ir::Attribute* attr = ctx.node().attribute("type");
  if (!attr) return std::optional<ir::TensorType>();
  std::optional<ir::TensorType> type = ir::decodeTypeAttribute(attr->ints);
  if (!type) return ctx.error("attribute 'type' is not a type");
  if (isOptional(type->kind))
    return ctx.unsupportedError("attribute 'type' is an optional; an optional of an optional is not supported");
  return type;
}

Status inferOptional(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 0, 1));
  KILN_ASSIGN_OR_RETURN(std::optional<ir::TensorType> declared, declaredElementType(ctx));
  if (!ctx.hasInput(0) && !declared) return ctx.error("an Optional without an input needs its 'type' attribute");
  ir::TensorType type = ctx.hasInput(0) ? ctx.inputType(0) : *declared;
  if (isOptional(type.kind)) return ctx.error("input is already an optional");
  if (declared && (declared->kind != type.kind || declared->dtype != type.dtype))
    return ctx.error("input 0 is " + withArticle(type.kind) + " of " + std::string(ir::name(type.dtype)) +
                     ", but attribute 'type' says " + withArticle(declared->kind) + " of " +
                     std::string(ir::name(declared->dtype)));
  type.kind = type.kind == ValueKind::kSequence ? ValueKind::kOptionalSequence : ValueKind::kOptionalTensor;
  ctx.setOutputType(0, std::move(type));
  return Status::ok();
}

Status inferOptionalHasElement(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, ctx.opset() < 18 ? 1 : 0, 1));
  if (ctx.opset() < 18 && !ctx.hasInput(0)) return ctx.error("input is missing (input 0)");
  if (ctx.opset() < 18 && !isOptional(ctx.inputType(0).kind))
    return ctx.error("input is a " + std::string(ir::kindName(ctx.inputType(0).kind)) +
                     ", expected an optional before opset 18");
  // From opset 18 an omitted input is an empty optional, a tensor or sequence a full one.
  std::optional<bool> present = !ctx.hasInput(0)                         ? std::optional(false)
                                : !isOptional(ctx.inputType(0).kind)     ? std::optional(true)
                                                                         : staticPresence(ctx.node().inputs[0]);
  if (!present) {
    ctx.setOutputType(0, {DType::kBool, ir::Shape{}});
    return Status::ok();
  }
  const bool value = *present;
  ctx.setOutputConstant(0, ir::Tensor::fromValues<bool>(DType::kBool, {}, std::span<const bool>(&value, 1)));
  return Status::ok();
}

Status inferOptionalGetElement(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 1, 1));
  if (!ctx.hasInput(0)) return ctx.error("input is missing (input 0)");
  ir::TensorType type = ctx.inputType(0);
  if (!isOptional(type.kind)) {
    if (ctx.opset() < 18) return ctx.error("input is a " + std::string(ir::kindName(type.kind)) + ", expected an optional before opset 18");
    ctx.setOutputType(0, std::move(type));  // a tensor or sequence is returned as it is
    return Status::ok();
  }
  if (staticPresence(ctx.node().inputs[0]) == false) return ctx.error("the optional is empty; there is no element to get");
  type.kind = type.kind == ValueKind::kOptionalSequence ? ValueKind::kSequence : ValueKind::kTensor;
  ctx.setOutputType(0, std::move(type));
  return Status::ok();
}

}  // namespace

void registerOptionalOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Optional", {15}, {{"type", ir::Attribute::Kind::kInts}}, inferOptional, lowerOptional});
  registry.add(OpSchema{"", "OptionalHasElement", {15, 18}, {}, inferOptionalHasElement, lowerOptionalHasElement});
  registry.add(OpSchema{"", "OptionalGetElement", {15, 18}, {}, inferOptionalGetElement, lowerOptionalGetElement});
}

}  // namespace kiln::ops
