// A one-node model with any number of inputs and outputs of any dtype, run on
// the reference evaluator: inputs and outputs are ir::Tensors. Used by the op
// tests whose ops have several outputs of different dtypes (TopK, the
// recurrent layers, DynamicQuantizeLinear).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_graph.h"
#include "passes/infer_shapes.h"

namespace kiln::testing {

template <typename T>
ir::Tensor tensorOf(ir::DType dtype, std::vector<int64_t> dims, const std::vector<T>& values) {
  return ir::Tensor::fromValues<T>(dtype, std::move(dims), std::span<const T>(values));
}

template <typename T>
std::vector<T> valuesOf(const ir::Tensor& t) {
  std::vector<T> out(static_cast<size_t>(t.elementCount()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(T));
  return out;
}

class MultiOutputModel {
 public:
  MultiOutputModel(const std::string& op, int opset) {
    model_.opset_imports[""] = opset;
    node_ = model_.graph.addNode(op, "n");
  }

  // A run-time input (a graph input) whose data run() takes in order.
  MultiOutputModel& input(ir::DType dtype, std::vector<int64_t> dims) {
    ir::Value* v = model_.graph.addValue("x" + std::to_string(node_->inputs.size()), {dtype, ir::makeShape(dims)});
    model_.graph.inputs.push_back(v);
    node_->inputs.push_back(v);
    return *this;
  }
  MultiOutputModel& constantInput(ir::Tensor value) {
    ir::Value* v = model_.graph.addValue("c" + std::to_string(node_->inputs.size()), value.type());
    v->constant = std::move(value);
    node_->inputs.push_back(v);
    return *this;
  }
  MultiOutputModel& omittedInput() {
    node_->inputs.push_back(nullptr);
    return *this;
  }
  MultiOutputModel& attr(const std::string& name, ir::Attribute a) {
    node_->attributes[name] = std::move(a);
    return *this;
  }
  MultiOutputModel& intAttr(const std::string& name, int64_t value) {
    ir::Attribute a;
    a.i = value;
    return attr(name, a);
  }
  MultiOutputModel& floatAttr(const std::string& name, float value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kFloat;
    a.f = value;
    return attr(name, a);
  }
  MultiOutputModel& stringAttr(const std::string& name, std::string value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = std::move(value);
    return attr(name, a);
  }

  // Infers, lowers and evaluates with `outputs` outputs (nullptr-free); every
  // output comes back as a tensor. A failure fails the test and returns {}.
  std::vector<ir::Tensor> run(size_t outputs, const std::vector<ir::Tensor>& inputs) {
    for (size_t i = 0; i < outputs; ++i) {
      ir::Value* out = model_.graph.addValue("y" + std::to_string(i));
      out->producer = node_;
      out->producer_output = static_cast<int>(i);
      node_->outputs.push_back(out);
      model_.graph.outputs.push_back(out);
    }
    Status inferred = passes::inferShapes(model_);
    EXPECT_TRUE(inferred) << inferred.message();
    if (!inferred) return {};
    Expected<lower::Program> program = lower::lowerGraph(model_);
    EXPECT_TRUE(program) << (program ? "" : program.status().message());
    if (!program) return {};
    std::vector<std::vector<std::byte>> storage;
    std::vector<void*> out_ptrs;
    std::vector<ir::Tensor> results;
    for (size_t i = 0; i < outputs; ++i) {
      const lower::ProgramBuffer& b = program->buffers[program->output_buffers[i]];
      storage.emplace_back(static_cast<size_t>(b.elementCount() * ir::byteSize(b.dtype)));
    }
    for (auto& s : storage) out_ptrs.push_back(s.data());
    std::vector<const void*> in_ptrs;
    for (const ir::Tensor& t : inputs) in_ptrs.push_back(t.bytes().data());
    Status ran = lower::evaluateProgram(*program, in_ptrs, out_ptrs);
    EXPECT_TRUE(ran) << ran.message();
    for (size_t i = 0; i < outputs; ++i) {
      const lower::ProgramBuffer& b = program->buffers[program->output_buffers[i]];
      results.push_back(ir::Tensor::fromBytes(b.dtype, b.dims, std::move(storage[i])));
    }
    return results;
  }

 private:
  ir::Model model_;
  ir::Node* node_;
};

}  // namespace kiln::testing
