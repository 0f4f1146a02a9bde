// What an op's lowering sees: the node (attributes, static input and output
// shapes) and builders for the kernels it emits. Buffers handed out here are
// already bound to the program buffers of the node's inputs and outputs.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "compiler/kir/kir.h"
#include "compiler/lower/program.h"
#include "compiler/ops/op_registry.h"

namespace kiln::ops {

class LowerContext : public NodeView {
 public:
  using Buffer = kir::KernelBuilder::Buffer;

  LowerContext(const ir::Node& node, int opset, lower::Program& program,
               const std::map<const ir::Value*, int>& value_buffers, std::string kernel_prefix);

  // Shapes are static by the time ops are lowered (checked before lowering).
  std::vector<int64_t> inputDims(size_t i) const;
  ir::DType inputDType(size_t i) const { return inputType(i).dtype; }
  std::vector<int64_t> outputDims(size_t i) const;
  ir::DType outputDType(size_t i) const { return node().outputs[i]->type.dtype; }

  // Starts a kernel for this node; later input()/output()/temp() calls add
  // parameters to it. Most ops emit one kernel.
  kir::KernelBuilder& newKernel(const std::string& suffix = {});
  kir::KernelBuilder& builder();

  // A parameter of the current kernel bound to node input/output i, indexed
  // with its own shape or with `view` (same element count, e.g. Reshape).
  Buffer input(size_t i);
  Buffer input(size_t i, std::vector<int64_t> view);
  Buffer output(size_t i);
  Buffer output(size_t i, std::vector<int64_t> view);
  // Scratch space in the arena, written by one stage and read by later ones.
  Buffer temp(const std::string& name, ir::DType dtype, std::vector<int64_t> shape);

  // Moves the built kernels into the program. Called by the lowering driver.
  void flush();

 private:
  int bufferOf(const ir::Value* value) const;

  lower::Program& program_;
  const std::map<const ir::Value*, int>& value_buffers_;
  std::string kernel_prefix_;
  std::vector<std::pair<std::unique_ptr<kir::KernelBuilder>, std::vector<int>>> kernels_;
};

}  // namespace kiln::ops
