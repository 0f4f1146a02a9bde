#include "compiler/lower/lower_context.h"

#include <cassert>

namespace kiln::ops {

LowerContext::LowerContext(const ir::Node& node, int opset, lower::Program& program,
                           const std::map<const ir::Value*, int>& value_buffers, std::string kernel_prefix)
    : NodeView(node, opset), program_(program), value_buffers_(value_buffers), kernel_prefix_(std::move(kernel_prefix)) {}

std::vector<int64_t> LowerContext::inputDims(size_t i) const {
  return program_.buffers[bufferOf(node().inputs[i])].dims;
}

std::vector<int64_t> LowerContext::outputDims(size_t i) const {
  return program_.buffers[bufferOf(node().outputs[i])].dims;
}

int LowerContext::bufferOf(const ir::Value* value) const {
  auto it = value_buffers_.find(value);
  assert(it != value_buffers_.end() && "value has no program buffer");
  return it->second;
}

kir::KernelBuilder& LowerContext::newKernel(const std::string& suffix) {
  std::string name = kernel_prefix_;
  if (!kernel_prefix_.empty() && kernels_.size() > 0) name += "_" + std::to_string(kernels_.size());
  if (!suffix.empty()) name += "_" + suffix;
  kernels_.emplace_back(std::make_unique<kir::KernelBuilder>(name, node().describe()), std::vector<int>{});
  return *kernels_.back().first;
}

kir::KernelBuilder& LowerContext::builder() {
  if (kernels_.empty()) newKernel();
  return *kernels_.back().first;
}

LowerContext::Buffer LowerContext::input(size_t i) { return input(i, inputDims(i)); }

LowerContext::Buffer LowerContext::input(size_t i, std::vector<int64_t> view) {
  const ir::Value* value = node().inputs[i];
  const lower::ProgramBuffer& buffer = program_.buffers[bufferOf(value)];
  bool same_view = view == buffer.dims;
  Buffer param = builder().input(value->name.empty() ? "in" + std::to_string(i) : value->name, buffer.dtype,
                                 std::move(view));
  if (same_view && buffer.isDynamic()) builder().kernel().params.back().dim_slots = buffer.dim_slots;
  kernels_.back().second.push_back(bufferOf(value));
  return param;
}

LowerContext::Buffer LowerContext::output(size_t i) { return output(i, outputDims(i)); }

LowerContext::Buffer LowerContext::output(size_t i, std::vector<int64_t> view) {
  const ir::Value* value = node().outputs[i];
  const lower::ProgramBuffer& buffer = program_.buffers[bufferOf(value)];
  bool same_view = view == buffer.dims;
  Buffer param = builder().output(value->name.empty() ? "out" + std::to_string(i) : value->name, buffer.dtype,
                                  std::move(view));
  if (same_view && buffer.isDynamic()) builder().kernel().params.back().dim_slots = buffer.dim_slots;
  kernels_.back().second.push_back(bufferOf(value));
  return param;
}

LowerContext::Buffer LowerContext::temp(const std::string& name, ir::DType dtype, std::vector<int64_t> shape) {
  lower::ProgramBuffer buffer;
  buffer.name = node().name + "/" + name;
  buffer.dtype = dtype;
  buffer.dims = shape;
  buffer.kind = lower::ProgramBuffer::Kind::kIntermediate;
  int index = program_.addBuffer(std::move(buffer));
  Buffer param = builder().output(name, dtype, std::move(shape));
  kernels_.back().second.push_back(index);
  return param;
}

LowerContext::Buffer LowerContext::constant(const std::string& name, ir::Tensor value) {
  lower::ProgramBuffer buffer;
  buffer.name = node().name + "/" + name;
  buffer.dtype = value.dtype();
  buffer.dims = value.dims();
  buffer.kind = lower::ProgramBuffer::Kind::kConstant;
  buffer.constant = std::move(value);
  std::vector<int64_t> shape = buffer.dims;
  ir::DType dtype = buffer.dtype;
  int index = program_.addBuffer(std::move(buffer));
  Buffer param = builder().input(name, dtype, std::move(shape));
  kernels_.back().second.push_back(index);
  return param;
}

bool LowerContext::isDynamicInput(size_t i) const {
  return program_.buffers[bufferOf(node().inputs[i])].isDynamic();
}

int LowerContext::inputDimSlot(size_t i, size_t d) const {
  const lower::ProgramBuffer& b = program_.buffers[bufferOf(node().inputs[i])];
  return d < b.dim_slots.size() ? b.dim_slots[d] : -1;
}

bool LowerContext::outputDimPending(size_t i, size_t d) const {
  const lower::ProgramBuffer& b = program_.buffers[bufferOf(node().outputs[i])];
  return d < b.dim_slots.size() && b.dim_slots[d] == lower::kPendingDim;
}

int LowerContext::outputDimSlot(size_t i, size_t d) const {
  const lower::ProgramBuffer& b = program_.buffers[bufferOf(node().outputs[i])];
  return d < b.dim_slots.size() ? b.dim_slots[d] : -1;
}

int LowerContext::newSlot() {
  dynamic_aware_ = true;
  return program_.addSlot();
}

int LowerContext::addCheck(const std::string& message) {
  dynamic_aware_ = true;
  // A failed check is reported through the error slot: make sure the run has a slot table.
  if (!program_.isDynamic()) program_.addSlot();
  return program_.addCheck(node().describe() + ": " + message);
}

void LowerContext::setOutputDimSlot(size_t i, size_t d, int slot) {
  lower::ProgramBuffer& b = program_.buffers[bufferOf(node().outputs[i])];
  b.dim_slots.resize(b.dims.size(), -1);
  b.dim_slots[d] = slot;
}

std::vector<kir::IterVar> LowerContext::outputVars(size_t i, const std::string& prefix) {
  std::vector<int64_t> dims = outputDims(i);
  std::vector<kir::IterVar> vars = builder().vars(dims, prefix);
  for (size_t d = 0; d < vars.size(); ++d) vars[d].extent_slot = outputDimSlot(i, d);
  return vars;
}

void LowerContext::flush() {
  for (auto& [kernel_builder, args] : kernels_)
    program_.calls.push_back(lower::KernelCall{kernel_builder->finish(), std::move(args)});
  kernels_.clear();
}

}  // namespace kiln::ops
