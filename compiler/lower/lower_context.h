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

// What the graph lowering offers a control-flow op (If, Loop, Scan): the
// nodes of its subgraphs lowered as calls of the same program, their values
// bound to program buffers. Outer-scope values a subgraph reads are already
// bound, so captures need nothing.
class SubgraphLowering {
 public:
  virtual ~SubgraphLowering() = default;
  // The program buffer holding `value` (a bound value, or a constant, bound
  // on first use).
  virtual Expected<int> bufferOf(const ir::Value& value) = 0;
  // Makes `value` (a subgraph input) read program buffer `buffer`.
  virtual void bind(const ir::Value& value, int buffer) = 0;
  // Appends the calls of every node of `graph`, in order.
  virtual Status lowerNodes(const ir::Graph& graph) = 0;
};

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
  // A constant of the op's own (from its attributes, such as
  // StringNormalizer's stopwords), read-only in the artifact.
  Buffer constant(const std::string& name, ir::Tensor value);

  // ---- Run-time shapes ----
  // A value whose dims are not all known at compile time has a dynamic
  // buffer: each unknown dim lives in a dim slot. An op whose output shape
  // depends on input data (Reshape with a computed target, Range, ...)
  // emits a kernel of shape steps that computes the dims (setOutputDim),
  // then kernels whose extents are those slots. Lowerings that never call
  // these functions are refused for nodes with dynamic inputs or outputs.
  bool isDynamicInput(size_t i) const;
  // The slot holding dim d of input i, or -1 where it is static.
  int inputDimSlot(size_t i, size_t d) const;
  // Whether dim d of output i is still to be given by setOutputDim.
  bool outputDimPending(size_t i, size_t d) const;
  int newSlot();
  // A run-time check's message, "{$k}" standing for slot k; the node's
  // description is prepended.
  int addCheck(const std::string& message);
  // Output i's dim d takes its size from `slot`.
  void setOutputDimSlot(size_t i, size_t d, int slot);
  int outputDimSlot(size_t i, size_t d) const;
  bool handlesDynamicShapes() const { return dynamic_aware_; }
  // One iteration variable per dim of output i (extents static or slots).
  std::vector<kir::IterVar> outputVars(size_t i, const std::string& prefix = "i");

  // Moves the built kernels into the program. Called by the lowering driver.
  void flush();

  // ---- Control flow ----
  // Null where the caller lowers a single node (compile-time evaluation).
  SubgraphLowering* subgraphs() const { return subgraphs_; }
  void setSubgraphs(SubgraphLowering* subgraphs) { subgraphs_ = subgraphs; }
  lower::Program& program() { return program_; }
  // Program buffers of the node's input and output i.
  int inputBuffer(size_t i) const { return bufferOf(node().inputs[i]); }
  int outputBuffer(size_t i) const { return bufferOf(node().outputs[i]); }

 private:
  int bufferOf(const ir::Value* value) const;

  lower::Program& program_;
  const std::map<const ir::Value*, int>& value_buffers_;
  std::string kernel_prefix_;
  std::vector<std::pair<std::unique_ptr<kir::KernelBuilder>, std::vector<int>>> kernels_;
  bool dynamic_aware_ = false;
  SubgraphLowering* subgraphs_ = nullptr;
};

}  // namespace kiln::ops
