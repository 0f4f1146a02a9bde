#include "passes/quantize_graph.h"

#include "passes/value_uses.h"

namespace kiln::passes::qgraph {

std::string uniqueName(const ir::Graph& graph, const std::string& base) {
  std::string name = base;
  for (int i = 1; graph.findValue(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

ir::Value* tensorConstant(ir::Graph& graph, const std::string& name, ir::Tensor value) {
  ir::Value* v = graph.addValue(uniqueName(graph, name));
  v->constant = std::move(value);
  v->type = v->constant->type();
  return v;
}

namespace {

template <typename T>
ir::Value* constantOf(ir::Graph& graph, const std::string& name, ir::DType dtype, std::vector<int64_t> dims,
                      const std::vector<T>& values) {
  return tensorConstant(graph, name, ir::Tensor::fromValues<T>(dtype, std::move(dims), values));
}

}  // namespace

ir::Value* floatConstant(ir::Graph& graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& values) {
  return constantOf<float>(graph, name, ir::DType::kFloat32, std::move(dims), values);
}

ir::Value* int8Constant(ir::Graph& graph, const std::string& name, ir::DType dtype, std::vector<int64_t> dims,
                        const std::vector<int32_t>& values) {
  if (dtype == ir::DType::kUInt8)
    return constantOf<uint8_t>(graph, name, dtype, std::move(dims), std::vector<uint8_t>(values.begin(), values.end()));
  return constantOf<int8_t>(graph, name, ir::DType::kInt8, std::move(dims),
                            std::vector<int8_t>(values.begin(), values.end()));
}

ir::Value* int32Constant(ir::Graph& graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<int32_t>& values) {
  return constantOf<int32_t>(graph, name, ir::DType::kInt32, std::move(dims), values);
}

ir::Node* addNode(ir::Graph& graph, const std::string& op, const std::string& node_name,
                  std::vector<ir::Value*> inputs, const std::string& out) {
  ir::Node* node = graph.addNode(op, node_name);
  node->inputs = std::move(inputs);
  ir::Value* v = graph.addValue(uniqueName(graph, out));
  v->producer = node;
  node->outputs.push_back(v);
  return node;
}

void setIntAttribute(ir::Node* node, const std::string& name, int64_t value) {
  ir::Attribute a;
  a.kind = ir::Attribute::Kind::kInt;
  a.i = value;
  node->attributes[name] = a;
}

int64_t intAttribute(const ir::Node& node, const char* name, int64_t fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->i : fallback;
}

float floatAttribute(const ir::Node& node, const char* name, float fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->f : fallback;
}

std::optional<std::vector<float>> constantFloats(const ir::Value* v) {
  if (!v || !v->isConstant()) return std::nullopt;
  std::vector<float> out(static_cast<size_t>(v->constant->elementCount()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(v->constant->floatAt(static_cast<int64_t>(i)));
  return out;
}

std::optional<std::vector<int32_t>> constantInts(const ir::Value* v) {
  if (!v || !v->isConstant()) return std::nullopt;
  std::vector<int32_t> out(static_cast<size_t>(v->constant->elementCount()));
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int32_t>(v->constant->intAt(static_cast<int64_t>(i)));
  return out;
}

std::optional<QdqParams> qdqParams(const ir::Node& node) {
  if (node.attribute("block_size") && node.attribute("block_size")->i != 0) return std::nullopt;
  QdqParams p;
  auto scales = constantFloats(node.input(1));
  if (!scales || scales->empty()) return std::nullopt;
  p.scales = std::move(*scales);
  if (node.inputs.size() > 2 && node.inputs[2]) {
    auto zps = constantInts(node.input(2));
    if (!zps || zps->size() != p.scales.size()) return std::nullopt;
    p.zero_points = std::move(*zps);
    p.qtype = node.inputs[2]->constant->dtype();
  }
  if (node.op_type == "DequantizeLinear" && node.input(0)) p.qtype = node.input(0)->type.dtype;
  if (p.qtype != ir::DType::kUInt8 && p.qtype != ir::DType::kInt8) return std::nullopt;
  p.axis = intAttribute(node, "axis", 1);
  return p;
}

bool escapes(const ir::Graph& graph, const ir::Value* value) {
  return isGraphOutput(graph, value) || capturedBySubgraphs(graph).count(value) > 0;
}

}  // namespace kiln::passes::qgraph
