// One-node fixtures for the op tests: OneNodeGraph runs an op's resolve +
// infer; OneNodeModel builds a one-node model, infers its shapes, lowers it and
// runs it on the reference evaluator.
#pragma once

#include <gtest/gtest.h>

#include <concepts>
#include <cstring>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/kir/evaluator.h"
#include "compiler/lower/lower_graph.h"
#include "compiler/ops/op_registry.h"
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

// "1x3x?xbatch" style shapes: numbers are known dims, other words symbols.
inline ir::Shape parseShape(const std::string& text) {
  ir::Shape shape;
  if (text == "scalar" || text.empty()) return shape;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('x', start);
    if (end == std::string::npos) end = text.size();
    std::string part = text.substr(start, end - start);
    bool number = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    shape.push_back(number ? ir::Dim::known(std::stoll(part)) : ir::Dim::named(part));
    start = end + 1;
  }
  return shape;
}

class OneNodeGraph {
 public:
  explicit OneNodeGraph(std::string op, std::string name = "n1") {
    node_ = graph_.addNode(std::move(op), std::move(name));
  }

  OneNodeGraph& input(ir::DType dtype, const std::string& shape) {
    ir::Value* v = graph_.addValue("in" + std::to_string(node_->inputs.size()), {dtype, parseShape(shape)});
    node_->inputs.push_back(v);
    return *this;
  }
  OneNodeGraph& omittedInput() {
    node_->inputs.push_back(nullptr);
    return *this;
  }
  OneNodeGraph& constantInput(ir::Tensor value) {
    ir::Value* v = graph_.addValue("in" + std::to_string(node_->inputs.size()), value.type());
    v->constant = std::move(value);
    node_->inputs.push_back(v);
    return *this;
  }
  OneNodeGraph& ints(const std::string& name, std::vector<int64_t> values) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInts;
    a.ints = std::move(values);
    node_->attributes[name] = a;
    return *this;
  }
  OneNodeGraph& integer(const std::string& name, int64_t value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInt;
    a.i = value;
    node_->attributes[name] = a;
    return *this;
  }
  OneNodeGraph& real(const std::string& name, float value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kFloat;
    a.f = value;
    node_->attributes[name] = a;
    return *this;
  }
  OneNodeGraph& string(const std::string& name, std::string value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = std::move(value);
    node_->attributes[name] = a;
    return *this;
  }
  OneNodeGraph& outputs(size_t count) {
    for (size_t i = node_->outputs.size(); i < count; ++i) {
      ir::Value* v = graph_.addValue("out" + std::to_string(i));
      v->producer = node_;
      v->producer_output = static_cast<int>(i);
      node_->outputs.push_back(v);
    }
    return *this;
  }

  // resolve() then infer() at `opset`; one output unless outputs() said more.
  Status infer(int opset = 13) {
    if (node_->outputs.empty()) outputs(1);
    Expected<const ops::OpSchema*> schema = ops::OpRegistry::global().resolve(*node_, opset);
    if (!schema) return schema.status();
    ops::InferContext ctx(*node_, opset);
    return ops::inferNode(**schema, ctx);
  }

  const ir::TensorType& outputType(size_t i = 0) const { return node_->outputs[i]->type; }
  std::string outputShape(size_t i = 0) const {
    const auto& shape = node_->outputs[i]->type.shape;
    return shape ? ir::toString(*shape) : "?";
  }
  ir::Node& node() { return *node_; }

 private:
  ir::Graph graph_;
  ir::Node* node_;
};

// A one-node model: run-time inputs are graph inputs, constant inputs are
// initializers, the node's outputs are the graph outputs; run() evaluates it
// with the reference evaluator.
class OneNodeModel {
 public:
  OneNodeModel(const std::string& op, int opset) {
    model_.opset_imports[""] = opset;
    node_ = model_.graph.addNode(op, "n");
  }

  OneNodeModel& input(ir::DType dtype, std::vector<int64_t> dims) {
    ir::Value* v = model_.graph.addValue("x" + std::to_string(node_->inputs.size()), {dtype, ir::makeShape(dims)});
    model_.graph.inputs.push_back(v);
    node_->inputs.push_back(v);
    return *this;
  }
  OneNodeModel& constantInput(ir::Tensor value) {
    ir::Value* v = model_.graph.addValue("c" + std::to_string(node_->inputs.size()), value.type());
    v->constant = std::move(value);
    node_->inputs.push_back(v);
    return *this;
  }
  OneNodeModel& omittedInput() {
    node_->inputs.push_back(nullptr);
    return *this;
  }

  OneNodeModel& attr(const std::string& name, ir::Attribute a) {
    node_->attributes[name] = std::move(a);
    return *this;
  }
  // A template so that a plain `0` picks this overload rather than the float one.
  template <std::integral T>
  OneNodeModel& attr(const std::string& name, T value) {
    ir::Attribute a;
    a.i = static_cast<int64_t>(value);
    return attr(name, std::move(a));
  }
  OneNodeModel& attr(const std::string& name, float value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kFloat;
    a.f = value;
    return attr(name, std::move(a));
  }
  OneNodeModel& attr(const std::string& name, std::string value) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kString;
    a.s = std::move(value);
    return attr(name, std::move(a));
  }
  OneNodeModel& attr(const std::string& name, std::vector<int64_t> values) {
    ir::Attribute a;
    a.kind = ir::Attribute::Kind::kInts;
    a.ints = std::move(values);
    return attr(name, std::move(a));
  }

  // Output 0's elements for the run-time inputs (raw element bytes), in order.
  template <typename Out, typename... In>
  std::vector<Out> run(const std::vector<In>&... inputs) {
    Expected<lower::Program> program = inferAndLower(1);
    if (!program) return {};
    std::vector<Out> result(outputElems(*program, 0));
    evaluate(*program, {inputs.data()...}, {result.data()});
    return result;
  }

  // For float32 models: every one of `outputs` outputs' elements.
  std::vector<std::vector<float>> runFloat(size_t outputs, const std::vector<std::vector<float>>& inputs) {
    Expected<lower::Program> program = inferAndLower(outputs);
    if (!program) return {};
    std::vector<std::vector<float>> results;
    std::vector<void*> out_ptrs;
    for (size_t i = 0; i < outputs; ++i) results.emplace_back(outputElems(*program, i));
    for (auto& r : results) out_ptrs.push_back(r.data());
    std::vector<const void*> in_ptrs;
    for (const auto& in : inputs) in_ptrs.push_back(in.data());
    evaluate(*program, in_ptrs, out_ptrs);
    return results;
  }
  std::vector<float> runFloat(const std::vector<std::vector<float>>& inputs) {
    std::vector<std::vector<float>> all = runFloat(1, inputs);
    return all.empty() ? std::vector<float>{} : all[0];
  }

  // Any number of outputs of any dtype, as tensors (TopK, the recurrent
  // layers, DynamicQuantizeLinear); inputs are the run-time inputs in order.
  std::vector<ir::Tensor> runTensors(size_t outputs, const std::vector<ir::Tensor>& inputs) {
    Expected<lower::Program> program = inferAndLower(outputs);
    if (!program) return {};
    std::vector<std::vector<std::byte>> storage;
    std::vector<void*> out_ptrs;
    for (size_t i = 0; i < outputs; ++i) {
      const lower::ProgramBuffer& b = program->buffers[program->output_buffers[i]];
      storage.emplace_back(static_cast<size_t>(b.elementCount() * ir::byteSize(b.dtype)));
    }
    for (auto& bytes : storage) out_ptrs.push_back(bytes.data());
    std::vector<const void*> in_ptrs;
    for (const ir::Tensor& t : inputs) in_ptrs.push_back(t.bytes().data());
    evaluate(*program, in_ptrs, out_ptrs);
    std::vector<ir::Tensor> results;
    for (size_t i = 0; i < outputs; ++i) {
      const lower::ProgramBuffer& b = program->buffers[program->output_buffers[i]];
      results.push_back(ir::Tensor::fromBytes(b.dtype, b.dims, std::move(storage[i])));
    }
    return results;
  }

  // Any program, run-time shapes and strings included, through the
  // evaluator's tensor interface: outputs with this run's shapes, or the
  // run's error (a failed run-time check).
  Expected<std::vector<ir::Tensor>> evaluateTensors(size_t outputs, const std::vector<ir::Tensor>& inputs) {
    KILN_ASSIGN_OR_RETURN(lower::Program program, inferAndLower(outputs));
    return lower::evaluateProgram(program, inputs);
  }

 private:
  // Adds `outputs` graph outputs, infers shapes and lowers; a failure fails the test.
  Expected<lower::Program> inferAndLower(size_t outputs) {
    for (size_t i = 0; i < outputs; ++i) {
      ir::Value* out = model_.graph.addValue("y" + std::to_string(i));
      out->producer = node_;
      out->producer_output = static_cast<int>(i);
      node_->outputs.push_back(out);
      model_.graph.outputs.push_back(out);
    }
    Status inferred = passes::inferShapes(model_);
    EXPECT_TRUE(inferred) << inferred.message();
    if (!inferred) return inferred;
    Expected<lower::Program> program = lower::lowerGraph(model_);
    EXPECT_TRUE(program) << (program ? "" : program.status().message());
    return program;
  }
  static size_t outputElems(const lower::Program& program, size_t output) {
    return static_cast<size_t>(program.buffers[program.output_buffers[output]].elementCount());
  }
  static void evaluate(const lower::Program& program, const std::vector<const void*>& in_ptrs,
                       const std::vector<void*>& out_ptrs) {
    Status ran = lower::evaluateProgram(program, in_ptrs, out_ptrs);
    EXPECT_TRUE(ran) << ran.message();
  }

  ir::Model model_;
  ir::Node* node_;
};

// "ok" or the error message, so that a test can compare one string.
inline std::string messageOf(const Status& status) { return status.isOk() ? "ok" : status.message(); }

inline ir::Tensor int64Tensor(std::vector<int64_t> values) {
  return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(values.size())},
                                         std::span<const int64_t>(values));
}

}  // namespace kiln::testing
