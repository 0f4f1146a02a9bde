// Optional ops: Optional, OptionalHasElement, OptionalGetElement.
//
// An optional holds a tensor or a sequence, or nothing. Like sequences
// (sequence.cpp), optionals are resolved at compile time: where an optional
// is made by an Optional node, whether it holds a value is known, so
// OptionalHasElement is a constant and OptionalGetElement is the value
// (passes/expand_containers.cpp). An optional graph input's presence is a
// run-time flag (run_time_containers.cpp lowers OptionalHasElement and
// OptionalGetElement over it); any other optional known only at run time
// (a Loop result) is refused at lowering naming the node.
#include <string>

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

Status inferOptional(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(expectInputCount(ctx, 0, 1));
  // Optional() names its type with a TypeProto attribute, which the importer
  // refuses; what reaches here has its input.
  if (!ctx.hasInput(0)) return ctx.unsupportedError("an empty Optional needs its 'type' attribute, which Kiln does not read");
  ir::TensorType type = ctx.inputType(0);
  if (isOptional(type.kind)) return ctx.error("input is already an optional");
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

Status refuseRunTimeOptional(LowerContext& ctx) {
  return ctx.unsupportedError(
      "whether the optional holds a value is known only at run time; Kiln resolves optionals at compile time");
}

}  // namespace

void registerOptionalOps(OpRegistry& registry) {
  registry.add(OpSchema{"", "Optional", {15}, {}, inferOptional, refuseRunTimeOptional});
  registry.add(OpSchema{"", "OptionalHasElement", {15, 18}, {}, inferOptionalHasElement, lowerOptionalHasElement});
  registry.add(OpSchema{"", "OptionalGetElement", {15, 18}, {}, inferOptionalGetElement, lowerOptionalGetElement});
}

}  // namespace kiln::ops
