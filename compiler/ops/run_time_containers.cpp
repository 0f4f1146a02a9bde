// Sequences and optionals known only at run time: graph inputs and outputs,
// loop-carried values and If results (docs/architecture.md, "Containers at
// run time"). A sequence is a table of element references that container
// steps build and pass on (lower::ContainerStep); an optional's presence is
// a dim slot. What expand-containers resolved at compile time never comes
// here.
#include <optional>

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
  lower::ProgramBuffer like{out.name, out.type.dtype, {}, lower::ProgramBuffer::Kind::kIntermediate, -1, {}, -1, {}};
  return addSequenceBuffer(ctx.program(), out.name + suffix, like);
}

// The position a step reads (input `input`, when given) with the slots and
// the check that name it when it is out of range: [-n, n] for an insertion,
// [-n, n-1] for the others (an empty sequence has no element to take).
void setPosition(LowerContext& ctx, ContainerStep& step, size_t input) {
  bool given = ctx.numInputs() > input && ctx.hasInput(input);
  if (given) step.position = ctx.inputBuffer(input);
  if (!given && step.kind == ContainerStep::Kind::kInsert) return;  // the end: always in range
  step.position_slot = ctx.newSlot();
  step.count_slot = ctx.newSlot();
  std::string where = given ? " (input " + std::to_string(input) + " '" + ctx.node().inputs[input]->name + "')"
                            : " (the last element, input " + std::to_string(input) + " being omitted)";
  step.check = ctx.addCheck("position {$" + std::to_string(step.position_slot) +
                            "} is out of range for a sequence of {$" + std::to_string(step.count_slot) +
                            "} elements" + where);
}

// One insertion: `tensor` into `sequence` at the position input (the end
// when omitted), making `result`. A tensor whose shape is known only at
// run time keeps its dims in the table; its data is copied where the
// buffer may change (see copyInsertedData).
Status addInsertStep(LowerContext& ctx, int result, int sequence, size_t tensor_input,
                     std::optional<size_t> position_input) {
  ContainerStep step;
  step.kind = ContainerStep::Kind::kInsert;
  step.result = result;
  step.sequence = sequence;
  step.tensor = ctx.inputBuffer(tensor_input);
  if (!ctx.inputType(tensor_input).shape)
    return ctx.unsupportedError("input " + std::to_string(tensor_input) + " has a rank known only at run time");
  if (position_input) setPosition(ctx, step, *position_input);
  // The step reads a run-time-shaped tensor's dims from its slots; taking a
  // slot is how a lowering says it handles run-time shapes (this one holds
  // the length, for listings).
  if (ctx.isDynamicInput(tensor_input) && step.count_slot < 0) step.count_slot = ctx.newSlot();
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

}  // namespace

bool isSequenceBuffer(const lower::ProgramBuffer& buffer) { return isSequenceKind(buffer.container); }

int addSequenceBuffer(lower::Program& program, const std::string& name, const lower::ProgramBuffer& like) {
  lower::ProgramBuffer buffer{name, like.dtype, {}, lower::ProgramBuffer::Kind::kIntermediate, -1, {}, -1, {}};
  buffer.container = ir::ValueKind::kSequence;
  return program.addBuffer(std::move(buffer));
}

void appendSequenceAlias(lower::Program& program, int result, int sequence, const std::string& origin) {
  ContainerStep step;
  step.before_call = static_cast<int>(program.calls.size());
  step.result = result;
  step.sequence = sequence;
  step.origin = origin;
  program.container_steps.push_back(std::move(step));
}

void copyInsertedData(lower::Program& program, int first_call) {
  for (ContainerStep& step : program.container_steps)
    if (step.kind == ContainerStep::Kind::kInsert && step.before_call >= first_call) step.copy_data = true;
}

Status lowerSequenceEmpty(LowerContext& ctx) {
  ContainerStep step;
  step.result = ctx.outputBuffer(0);
  step.sequence = newSequenceBuffer(ctx, "_empty");
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

// One insertion at the end per element, each into a new table.
Status lowerSequenceConstruct(LowerContext& ctx) {
  if (ctx.numInputs() == 0) return ctx.error("SequenceConstruct needs at least one input");
  int sequence = newSequenceBuffer(ctx, "_empty");
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    int result = i + 1 == ctx.numInputs() ? ctx.outputBuffer(0) : newSequenceBuffer(ctx, "_" + std::to_string(i));
    KILN_RETURN_IF_ERROR(addInsertStep(ctx, result, sequence, i, std::nullopt));
    sequence = result;
  }
  return Status::ok();
}

Status lowerSequenceInsert(LowerContext& ctx) {
  if (!isSequenceKind(ctx.inputType(0).kind))
    return ctx.unsupportedError("the sequence's length is known only at run time");
  return addInsertStep(ctx, ctx.outputBuffer(0), ctx.inputBuffer(0), 1, 2);
}

// The element at a run-time position, copied into the output: its dims go
// to the output's dim slots, and a rank or static dim that differs from
// the output's type stops the run naming the node.
Status lowerSequenceAt(LowerContext& ctx) {
  const ir::TensorType& type = ctx.node().outputs[0]->type;
  if (!type.shape)
    return ctx.unsupportedError("the elements' rank is known only at run time; the output needs a known rank");
  for (size_t d = 0; d < type.shape->size(); ++d)
    if (ctx.outputDimPending(0, d)) ctx.setOutputDimSlot(0, d, ctx.newSlot());
  ContainerStep step;
  step.kind = ContainerStep::Kind::kAt;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.inputBuffer(0);
  setPosition(ctx, step, 1);
  step.shape_check = ctx.addCheck("the element at position {$" + std::to_string(step.position_slot) +
                                  "} does not have the shape " + type.toString() + " the output was compiled for");
  addStep(ctx, std::move(step), 0);
  return Status::ok();
}

Status lowerSequenceErase(LowerContext& ctx) {
  ContainerStep step;
  step.kind = ContainerStep::Kind::kErase;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.inputBuffer(0);
  setPosition(ctx, step, 1);
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

// An optional sequence made at run time (an If branch's result): the
// input's table passed on, or the empty one, and a presence slot of its own
// set by a kernel of the node.
Status lowerOptional(LowerContext& ctx) {
  if (ctx.node().outputs[0]->type.kind != ir::ValueKind::kOptionalSequence)
    return ctx.unsupportedError("an optional tensor whose use is known only at run time is not compiled; "
                                "optional sequences are");
  int present = ctx.newSlot();
  ctx.program().buffers[ctx.outputBuffer(0)].present_slot = present;
  kir::KernelBuilder& kb = ctx.newKernel("presence");
  kb.setSlot(present, Expr::index(ctx.hasInput(0) ? 1 : 0));
  ContainerStep step;
  step.result = ctx.outputBuffer(0);
  step.sequence = ctx.hasInput(0) ? ctx.inputBuffer(0) : newSequenceBuffer(ctx, "_empty");
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
