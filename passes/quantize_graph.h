// Graph-building helpers shared by the quantization passes (quantize.cpp,
// quantize_dynamic.cpp, fold_qdq.cpp): named constants, one-output nodes and
// reading a QuantizeLinear/DequantizeLinear's parameters.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::passes::qgraph {

// `base`, or base_1, base_2... whichever names no value of `graph` yet.
std::string uniqueName(const ir::Graph& graph, const std::string& base);

// A new value holding `value`, named `name` or a variant of it.
ir::Value* tensorConstant(ir::Graph& graph, const std::string& name, ir::Tensor value);
ir::Value* floatConstant(ir::Graph& graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& values);
ir::Value* int8Constant(ir::Graph& graph, const std::string& name, ir::DType dtype, std::vector<int64_t> dims,
                        const std::vector<int32_t>& values);
ir::Value* int32Constant(ir::Graph& graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<int32_t>& values);

// A node `op` reading `inputs` with one new output named after `out`.
ir::Node* addNode(ir::Graph& graph, const std::string& op, const std::string& node_name,
                  std::vector<ir::Value*> inputs, const std::string& out);

void setIntAttribute(ir::Node* node, const std::string& name, int64_t value);
int64_t intAttribute(const ir::Node& node, const char* name, int64_t fallback);
float floatAttribute(const ir::Node& node, const char* name, float fallback);

// A constant's elements as float, or nullopt when `v` is not a constant.
std::optional<std::vector<float>> constantFloats(const ir::Value* v);
std::optional<std::vector<int32_t>> constantInts(const ir::Value* v);

// The parameters of a QuantizeLinear or DequantizeLinear whose scale and
// zero point are constants: per tensor (one scale) or per `axis`.
struct QdqParams {
  std::vector<float> scales;
  std::vector<int32_t> zero_points;  // empty: the default 0
  ir::DType qtype = ir::DType::kUInt8;
  int64_t axis = 1;
  bool perTensor() const { return scales.size() == 1; }
};
std::optional<QdqParams> qdqParams(const ir::Node& node);

// Readers of `value` (nodes only); a graph output or a subgraph capture
// makes the value "escape".
bool escapes(const ir::Graph& graph, const ir::Value* value);

}  // namespace kiln::passes::qgraph
