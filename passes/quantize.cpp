// quantize (pipeline step, run when --quantize asks for it): a float32 graph
// becomes a QDQ graph.
//   int8:  x -> Q(u8) -> DQ -> Conv/MatMul/Gemm(DQ(W_s8)) [-> Relu] -> Q(u8) -> DQ -> ...
//          activations uint8 asymmetric per tensor from their calibrated
//          range; weights int8 symmetric per output channel (±127, zero
//          point 0), stored quantized.
//   dynamic-int8: MatMul/Gemm with a constant weight -> DynamicQuantizeLinear,
//          MatMulInteger, Cast, Mul by x_scale·w_scale[column] (+ bias).
// The folding of QDQ into integer ops is a separate pass (fold_qdq.cpp).
// Requires: shapes inferred; runs after fold-affine so BatchNorm is already
// in the weights.
#include "passes/quantize.h"

#include <algorithm>
#include <set>

#include "passes/quantize_graph.h"

namespace kiln::passes {
namespace {

using namespace qgraph;

// A Conv, MatMul or Gemm with a float32 activation and a constant float32
// weight, and where its weight's output channels lie.
struct LinearOp {
  ir::Node* node = nullptr;
  ir::Value* x = nullptr;
  ir::Value* w = nullptr;
  size_t channel_axis = 0;  // 0: outermost dim of w as stored; 1: innermost
};

bool isFloatConstant(const ir::Value* v) {
  return v && v->isConstant() && v->constant->dtype() == ir::DType::kFloat32;
}

std::optional<LinearOp> quantizableLinear(ir::Node& n) {
  if (!n.domain.empty() || n.outputs.empty() || !n.outputs[0]) return std::nullopt;
  ir::Value* x = n.input(0);
  ir::Value* w = n.input(1);
  if (!x || x->isConstant() || x->type.dtype != ir::DType::kFloat32 || !isFloatConstant(w)) return std::nullopt;
  size_t w_rank = w->constant->dims().size();
  if (n.op_type == "Conv") {
    if (w_rank < 3 || (n.input(2) && !isFloatConstant(n.input(2)))) return std::nullopt;
    return LinearOp{&n, x, w, 0};
  }
  if (n.op_type == "MatMul" && w_rank == 2) return LinearOp{&n, x, w, 1};
  if (n.op_type == "Gemm" && w_rank == 2 && intAttribute(n, "transA", 0) == 0) {
    if (n.input(2) && !isFloatConstant(n.input(2))) return std::nullopt;
    return LinearOp{&n, x, w, intAttribute(n, "transB", 0) ? size_t{0} : size_t{1}};
  }
  return std::nullopt;
}

// The Conv's result as later ops read it: after a Relu that is its only
// reader (the Relu then becomes QLinearConv's output clamp). Only Conv
// results are quantized: fold-qdq turns a MatMul/Gemm into an integer
// product with a float32 result either way, and quantizing that result
// (logits, attention scores) would only add error.
ir::Value* resultOf(const ir::Graph& graph, const LinearOp& op) {
  ir::Value* y = op.node->outputs[0];
  std::vector<ir::Node*> users = graph.usersOf(y);
  if (users.size() == 1 && users[0]->op_type == "Relu" && users[0]->domain.empty() && !escapes(graph, y))
    return users[0]->outputs[0];
  return y;
}

std::vector<ir::Node*> nodeList(const ir::Graph& graph) {
  std::vector<ir::Node*> nodes;
  for (const auto& n : graph.nodes()) nodes.push_back(n.get());
  return nodes;
}

// Weight w quantized to int8 (symmetric, per channel along `axis` of its
// layout, or per tensor), read through a new DequantizeLinear.
ir::Value* quantizeWeight(ir::Graph& graph, const LinearOp& op, bool per_channel) {
  const ir::Tensor& t = *op.w->constant;
  std::vector<float> w = *constantFloats(op.w);
  std::vector<float> scales = quant::int8ChannelScales(w, t.dims(), op.channel_axis);
  if (!per_channel) scales.assign(1, *std::max_element(scales.begin(), scales.end()));
  int64_t channels = static_cast<int64_t>(scales.size());
  std::vector<int32_t> q(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    size_t c = channels == 1 ? 0 : op.channel_axis == 0 ? i / (w.size() / channels) : i % channels;
    q[i] = quant::quantizeValue(w[i], scales[c], 0, -127, 127);
  }
  std::vector<int64_t> param_dims = per_channel ? std::vector<int64_t>{channels} : std::vector<int64_t>{};
  ir::Value* wq = int8Constant(graph, op.w->name + "_quantized", ir::DType::kInt8, t.dims(), q);
  ir::Value* scale = floatConstant(graph, op.w->name + "_scale", param_dims, scales);
  ir::Value* zp = int8Constant(graph, op.w->name + "_zero_point", ir::DType::kInt8, param_dims,
                               std::vector<int32_t>(static_cast<size_t>(channels), 0));
  ir::Node* dq = addNode(graph, "DequantizeLinear", op.node->name + "/weight_dq", {wq, scale, zp},
                         op.w->name + "_dequantized");
  if (per_channel) setIntAttribute(dq, "axis", op.channel_axis == 0 ? 0 : static_cast<int64_t>(t.dims().size()) - 1);
  dq->outputs[0]->type = op.w->type;
  return dq->outputs[0];
}

std::string layerName(const ir::Node& node) {
  if (!node.name.empty() || node.outputs.empty() || !node.outputs[0]) return node.name;
  return node.outputs[0]->name;
}

}  // namespace

std::vector<std::string> quantizableLayers(const ir::Graph& graph) {
  std::vector<std::string> names;
  for (ir::Node* n : nodeList(graph))
    if (quantizableLinear(*n)) names.push_back(layerName(*n));
  return names;
}

std::vector<std::string> valuesToCalibrate(const ir::Graph& graph) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  auto add = [&](const ir::Value* v) {
    if (seen.insert(v->name).second) names.push_back(v->name);
  };
  for (ir::Node* n : nodeList(graph)) {
    auto op = quantizableLinear(*n);
    if (!op) continue;
    add(op->x);
    ir::Value* y = resultOf(graph, *op);
    if (op->node->op_type == "Conv" && !escapes(graph, y)) add(y);
  }
  return names;
}

const ir::Node* firstQuantizedNode(const ir::Graph& graph) {
  static const std::set<std::string> kQuantizedOps = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                                                      "QLinearConv",    "QLinearMatMul",    "MatMulInteger",
                                                      "ConvInteger"};
  for (const auto& n : graph.nodes())
    if (n->domain.empty() && kQuantizedOps.count(n->op_type)) return n.get();
  return nullptr;
}

namespace {

// Drops the float weights the rewrite left unread (and the Constant nodes
// that made them), so a QDQ export does not carry every weight twice.
void dropUnreadWeights(ir::Graph& graph, const std::set<ir::Value*>& weights) {
  for (ir::Value* w : weights) {
    if (!graph.usersOf(w).empty() || escapes(graph, w)) continue;
    ir::Node* producer = w->producer;
    if (producer && producer->outputs.size() == 1) graph.eraseNode(producer);
  }
  graph.removeUnusedValues();
}

}  // namespace

Expected<bool> quantizeStatic(ir::Model& model, const std::map<std::string, quant::Range>& ranges,
                              const std::set<std::string>& keep_float) {
  ir::Graph& graph = model.graph;
  bool per_channel = model.opsetFor("") >= 13;
  // One DequantizeLinear per weight and channel axis: a weight that several
  // nodes read (tied embeddings, a reused conv) is stored once as int8.
  std::map<std::pair<const ir::Value*, size_t>, ir::Value*> weight_dq;
  std::set<ir::Value*> replaced_weights;
  std::set<const ir::Value*> dequantized;  // outputs of the activation DQs made here
  std::map<const ir::Value*, ir::Value*> dq_of;
  // Every reader of v now reads DQ(Q(v)); returns the DQ's output, or
  // nullptr when v has no calibrated range.
  auto quantizeActivation = [&](ir::Value* v) -> ir::Value* {
    if (dequantized.count(v)) return v;
    if (auto it = dq_of.find(v); it != dq_of.end()) return it->second;
    auto range = ranges.find(v->name);
    if (range == ranges.end()) return nullptr;
    std::vector<ir::Node*> users = graph.usersOf(v);
    quant::QuantParams p = quant::uint8Params(range->second);
    ir::Value* scale = floatConstant(graph, v->name + "_scale", {}, {p.scale});
    ir::Value* zp = int8Constant(graph, v->name + "_zero_point", ir::DType::kUInt8, {}, {p.zero_point});
    ir::Node* q = addNode(graph, "QuantizeLinear", v->name + "/quantize", {v, scale, zp}, v->name + "_quantized");
    ir::Node* dq = addNode(graph, "DequantizeLinear", v->name + "/dequantize", {q->outputs[0], scale, zp},
                           v->name + "_dequantized");
    q->outputs[0]->type = ir::TensorType{ir::DType::kUInt8, v->type.shape};
    ir::Value* out = dq->outputs[0];
    out->type = v->type;
    for (ir::Node* user : users) {
      if (keep_float.count(layerName(*user))) continue;  // a float32 layer reads the float value
      for (ir::Value*& in : user->inputs)
        if (in == v) in = out;
    }
    dequantized.insert(out);
    dq_of[v] = out;
    return out;
  };

  bool changed = false;
  for (ir::Node* n : nodeList(graph)) {
    auto op = quantizableLinear(*n);
    if (!op || keep_float.count(layerName(*n)) || !quantizeActivation(op->x)) continue;
    ir::Value*& wdq = weight_dq[{op->w, op->channel_axis}];
    if (!wdq) wdq = quantizeWeight(graph, *op, per_channel);
    replaced_weights.insert(op->w);
    n->inputs[1] = wdq;
    ir::Value* y = resultOf(graph, *op);
    if (n->op_type == "Conv" && !escapes(graph, y)) quantizeActivation(y);
    changed = true;
  }
  if (!changed) return false;
  KILN_RETURN_IF_ERROR(graph.sortTopologically());
  dropUnreadWeights(graph, replaced_weights);
  return true;
}

Expected<bool> runQuantize(ir::Model& model, const QuantizeSpec& spec) {
  if (const ir::Node* n = firstQuantizedNode(model.graph))
    return invalidInput("--quantize: the model is already quantized (it has " + n->describe() +
                        "); compile it without --quantize");
  if (spec.mode == QuantizeSpec::Mode::kDynamicInt8) return quantizeDynamic(model);
  return quantizeStatic(model, spec.ranges, spec.keep_float);
}

}  // namespace kiln::passes
