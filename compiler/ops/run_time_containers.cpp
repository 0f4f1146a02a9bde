// Sequences and optionals known only at run time: graph inputs and outputs
// (docs/architecture.md, "Containers at the graph boundary"). A sequence is
// a table of element references that container steps build and pass on
// (lower::ContainerStep); an optional's presence is a dim slot. What
// expand-containers resolved at compile time never comes here.
#include "compiler/lower/lower_context.h"
#include "compiler/ops/containers.h"

namespace kiln::ops {
namespace {

using kir::Expr;
using lower::ContainerStep;

bool isSequenceKind(ir::ValueKind kind) {
  return kind == ir::ValueKind::kSequence || kind == ir::ValueKind::kOptionalSequence;
}

// Appends a step that runs after the kernels this node's lowering has
// started so far (`kernels_first` of them, flushed after the step is listed).
void addStep(LowerContext& ctx, ContainerStep step, int kernels_first) {
  step.before_call = static_cast<int>(ctx.program().calls.size()) + kernels_first;
  step.origin = ctx.node().describe();
  ctx.program().container_steps.push_back(std::move(step));
}

int presentSlot(LowerContext& ctx, size_t input) { return ctx.program().buffers[ctx.inputBuffer(input)].present_slot; }

// out = in, element by element, for a tensor of static dims.
void copyTensor(LowerContext& ctx, kir::KernelBuilder& kb) {
  int64_t count = 1;
  for (int64_t d : ctx.inputDims(0)) count *= d;
  LowerContext::Buffer in = ctx.input(0, {count});
  LowerContext::Buffer out = ctx.output(0, {count});
  kir::IterVar i = kb.var("i", count);
  kb.compute(out, {i}, in(i));
}

// A new sequence buffer of the node: the empty sequence until a step sets it.
int newSequenceBuffer(LowerContext& ctx, const std::string& suffix) {
  const ir::Value& out = *ctx.node().outputs[0];
  lower::ProgramBuffer buffer{out.name + suffix, out.type.dtype, {}, lower::ProgramBuffer::Kind::kIntermediate, -1, {}, -1, {}};
  buffer.container = ir::ValueKind::kSequence;
  return ctx.program().addBuffer(std::move(buffer));
}

}  // namespace

Status lowerSequenceEmpty(LowerContext& ctx) {
  ContainerStep step;
  step.result = ctx.outputBuffer(0);
  step.sequence = newSequenceBuffer(ctx, "_empty");
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

// One insertion at the end per element, each into a new table.
Status lowerSequenceConstruct(LowerContext& ctx) {
  int sequence = newSequenceBuffer(ctx, "_empty");
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (!ctx.inputType(i).hasKnownShape())
      return ctx.unsupportedError("input " + std::to_string(i) + " has a shape known only at run time");
    ContainerStep step;
    step.kind = ContainerStep::Kind::kInsert;
    step.result = i + 1 == ctx.numInputs() ? ctx.outputBuffer(0) : newSequenceBuffer(ctx, "_" + std::to_string(i));
    step.sequence = sequence;
    step.tensor = ctx.inputBuffer(i);
    sequence = step.result;
    addStep(ctx, std::move(step), 0);
  }
  if (ctx.numInputs() == 0) return ctx.error("SequenceConstruct needs at least one input");
  return Status::ok();
}

Status lowerSequenceInsert(LowerContext& ctx) {
  if (!isSequenceKind(ctx.inputType(0).kind))
    return ctx.unsupportedError("the sequence's length is known only at run time");
  if (!ctx.inputType(1).hasKnownShape())
    return ctx.unsupportedError("the tensor inserted has a shape known only at run time");
  ContainerStep step;
  step.kind = ContainerStep::Kind::kInsert;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.inputBuffer(0);
  step.tensor = ctx.inputBuffer(1);
  if (ctx.numInputs() > 2 && ctx.hasInput(2)) {
    step.position = ctx.inputBuffer(2);
    step.position_slot = ctx.newSlot();
    step.count_slot = ctx.newSlot();
    step.check = ctx.addCheck("position {$" + std::to_string(step.position_slot) + "} is out of range for a sequence of {$" +
                              std::to_string(step.count_slot) + "} elements (input 2 '" + ctx.node().inputs[2]->name + "')");
  }
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

Status lowerSequenceLength(LowerContext& ctx) {
  ContainerStep step;
  step.kind = ContainerStep::Kind::kLength;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.inputBuffer(0);
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

Status lowerOptionalHasElement(LowerContext& ctx) {
  int present = presentSlot(ctx, 0);
  if (present < 0) return ctx.unsupportedError("whether the optional holds a value is not known");
  kir::KernelBuilder& kb = ctx.newKernel("has_element");
  kb.compute(ctx.output(0), {}, kir::cast(ir::DType::kBool, kir::slotValue(present)));
  return Status::ok();
}

// A check that the optional holds a value, naming the node and the input;
// then its tensor copied, or its sequence passed on.
Status lowerOptionalGetElement(LowerContext& ctx) {
  ir::ValueKind kind = ctx.inputType(0).kind;
  bool optional = kind == ir::ValueKind::kOptionalTensor || kind == ir::ValueKind::kOptionalSequence;
  int present = presentSlot(ctx, 0);
  if (optional && present < 0) return ctx.unsupportedError("whether the optional holds a value is not known");
  // From opset 18 a tensor or sequence is its own element: nothing to check.
  kir::KernelBuilder& kb = ctx.newKernel("get_element");
  if (optional)
    kb.check(ctx.addCheck("the optional input '" + ctx.node().inputs[0]->name + "' is empty"),
             Expr::index(0) < kir::slotValue(present));
  if (!isSequenceKind(ctx.inputType(0).kind)) {
    copyTensor(ctx, kb);
    return Status::ok();
  }
  ContainerStep step;
  step.kind = ContainerStep::Kind::kAlias;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.inputBuffer(0);
  addStep(ctx, std::move(step), 1);
  return Status::ok();
}

bool isContainerIdentity(const ir::Node& node) {
  return node.op_type == "Identity" && (node.domain.empty() || node.domain == "ai.onnx") && !node.inputs.empty() &&
         node.inputs[0] && !node.inputs[0]->type.isTensor();
}

Status lowerContainerIdentity(LowerContext& ctx) {
  lower::Program& program = ctx.program();
  int in = ctx.inputBuffer(0), out = ctx.outputBuffer(0);
  program.buffers[out].present_slot = program.buffers[in].present_slot;
  if (!isSequenceKind(ctx.inputType(0).kind)) {
    copyTensor(ctx, ctx.newKernel("copy"));
    return Status::ok();
  }
  ContainerStep step;
  step.result = out;
  step.sequence = in;
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

}  // namespace kiln::ops
