// Builds one-node graphs for the op tests and runs an op's resolve + infer.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ops/op_registry.h"

namespace kiln::testing {

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
    return (*schema)->infer(ctx);
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

inline ir::Tensor int64Tensor(std::vector<int64_t> values) {
  return ir::Tensor::fromValues<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(values.size())},
                                         std::span<const int64_t>(values));
}

}  // namespace kiln::testing
