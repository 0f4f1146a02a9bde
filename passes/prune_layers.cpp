#include "passes/prune_layers.h"

#include <cstring>

#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

int64_t knownProduct(const ir::Value* v, size_t from, size_t to) {
  if (!v || !v->type.shape) return 0;
  const ir::Shape& s = *v->type.shape;
  int64_t p = 1;
  for (size_t d = from; d < to && d < s.size(); ++d) {
    if (!s[d].isKnown()) return 0;
    p *= s[d].value;
  }
  return p;
}

int64_t intAttr(const ir::Node& node, const char* name, int64_t fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->i : fallback;
}

}  // namespace

std::vector<float> floatData(const ir::Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.elementCount()));
  if (!out.empty()) std::memcpy(out.data(), t.bytes().data(), out.size() * sizeof(float));
  return out;
}

ir::Tensor floatTensor(std::vector<int64_t> dims, const std::vector<float>& values) {
  return ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), std::span<const float>(values));
}

void setConstantInput(ir::Graph& graph, ir::Node& node, size_t input, ir::Tensor value) {
  ir::Value* old = node.inputs[input];
  bool shared = graph.usersOf(old).size() > 1 || isGraphOutput(graph, old);
  for (const ir::Value* v : graph.inputs) shared = shared || v == old;
  if (!shared) {
    old->type = value.type();
    old->constant = std::move(value);
    return;
  }
  std::string name = old->name + "_pruned";
  for (int i = 1; graph.findValue(name); ++i) name = old->name + "_pruned_" + std::to_string(i);
  ir::Value* fresh = graph.addValue(name, value.type());
  fresh->constant = std::move(value);
  node.inputs[input] = fresh;
}

prune::WeightView weightView(const PrunableLayer& layer, const std::vector<int64_t>& dims) {
  prune::WeightView v;
  const std::string& op = layer.node->op_type;
  if (op == "Conv") {
    v.outputs = dims[0];
    v.inner = 1;
    for (size_t d = 1; d < dims.size(); ++d) v.inner *= dims[d];
    v.out_stride = v.inner;
    v.inner_stride = 1;
  } else if (layer.out_dim == 1) {  // [K, N]
    v.outputs = dims[1];
    v.inner = dims[0];
    v.out_stride = 1;
    v.inner_stride = dims[1];
  } else {  // Gemm transB: [N, K]
    v.outputs = dims[0];
    v.inner = dims[1];
    v.out_stride = dims[1];
    v.inner_stride = 1;
  }
  return v;
}

std::optional<PrunableLayer> prunableLayer(ir::Node& node) {
  if (!node.domain.empty()) return std::nullopt;
  const std::string& op = node.op_type;
  if (op != "Conv" && op != "Gemm" && op != "MatMul") return std::nullopt;
  const ir::Value* w = node.input(1);
  if (!w || !w->isConstant() || w->constant->dtype() != ir::DType::kFloat32) return std::nullopt;
  const ir::Value* x = node.input(0);
  if (!x || x->type.dtype != ir::DType::kFloat32) return std::nullopt;
  const std::vector<int64_t>& dims = w->constant->dims();
  PrunableLayer layer;
  layer.node = &node;
  const ir::Value* y = node.outputs.empty() ? nullptr : node.outputs[0];
  if (op == "Conv") {
    if (dims.size() < 3) return std::nullopt;
    layer.out_dim = 0;
    layer.inner_dim = 1;
    layer.macs_per_weight = knownProduct(y, 0, 1) * knownProduct(y, 2, dims.size());
  } else if (op == "Gemm") {
    if (dims.size() != 2) return std::nullopt;
    bool trans_b = intAttr(node, "transB", 0) != 0;
    layer.out_dim = trans_b ? 0 : 1;
    layer.inner_dim = trans_b ? 1 : 0;
    layer.macs_per_weight = knownProduct(y, 0, 1);
  } else {
    if (dims.size() != 2 || !x->type.shape || x->type.shape->size() < 2) return std::nullopt;
    layer.out_dim = 1;
    layer.inner_dim = 0;
    layer.macs_per_weight = knownProduct(x, 0, x->type.shape->size() - 1);
  }
  layer.view = weightView(layer, dims);
  return layer;
}

std::vector<PrunableLayer> prunableLayers(ir::Graph& graph) {
  std::vector<PrunableLayer> layers;
  for (const auto& node : graph.nodes())
    if (auto layer = prunableLayer(*node)) layers.push_back(*layer);
  return layers;
}

void measureLayer(const PrunableLayer& layer, PruneLayerRecord& record, bool after) {
  const ir::Tensor& w = *layer.node->input(layer.weight_input)->constant;
  std::vector<float> data = floatData(w);
  int64_t nonzero = 0;
  for (float v : data) nonzero += v != 0;
  int64_t params = static_cast<int64_t>(data.size());
  int64_t flops = 2 * nonzero * layer.macs_per_weight;
  int64_t channels = w.dims()[static_cast<size_t>(layer.out_dim)];
  if (after) {
    record.params_after = params;
    record.nonzero_after = nonzero;
    record.flops_after = flops;
    record.channels_after = channels;
    return;
  }
  record.node = layer.node->name;
  record.op = layer.node->op_type;
  record.params_before = params;
  record.nonzero_before = nonzero;
  record.flops_before = flops;
  record.channels_before = channels;
}

}  // namespace kiln::passes
