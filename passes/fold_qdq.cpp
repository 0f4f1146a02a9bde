// fold-qdq: QDQ patterns around Conv, MatMul and Gemm become integer ops, so
// the product runs on 8-bit operands with int32 accumulation.
//   DQ(x_q), DQ(W_q) -> Conv [bias] [-> Relu] -> Q   =>  QLinearConv (int32 bias)
//   DQ(x_q), DQ(W_q) -> MatMul [-> Relu] -> Q         =>  QLinearMatMul
//   DQ(x_q), DQ(W_q) -> Conv / MatMul / Gemm (any other reader)
//     => ConvInteger / MatMulInteger -> Add(int32 bias) -> Cast -> Mul(sx·sw)
//        whose Mul produces the op's original output (readers unchanged)
// where x's DequantizeLinear is per tensor and W's is per tensor or per
// output channel, all parameters constants. The int32 bias is
// round(b / (sx·sw[c])), ONNX's convention. A Relu is dropped before the Q
// only when the Q's zero point is its type's minimum (then saturation is the
// clamp at zero). Gemm needs transA = 0; transB and alpha/beta are folded into
// the constants. DQ(x_q) -> MaxPool -> Q with the same per-tensor scale
// (positive) and zero point on both sides => MaxPool(x_q): the max commutes
// with the increasing DQ, and Q(DQ(v)) = v for every 8-bit v. Other
// elementwise DQ -> op -> Q chains stay in float (kernel fusion inlines
// them). Also folds models that arrive in QDQ form (ONNX Runtime's
// quantizer output). The DequantizeLinears left unread are removed by
// eliminate-dead-nodes.
// Requires: shapes inferred.
#include <cmath>
#include <limits>

#include "passes/pass.h"
#include "passes/quantize_graph.h"

namespace kiln::passes {
namespace {

using namespace qgraph;

const ir::Node* producerOf(const ir::Value* v, const char* op) {
  return v && v->producer && v->producer->domain.empty() && v->producer->op_type == op ? v->producer : nullptr;
}

// One side of the product: the quantized tensor and its parameters.
struct Operand {
  ir::Value* q = nullptr;
  QdqParams params;
};

std::optional<Operand> dequantized(const ir::Value* v) {
  const ir::Node* dq = producerOf(v, "DequantizeLinear");
  if (!dq) return std::nullopt;
  auto params = qdqParams(*dq);
  if (!params) return std::nullopt;
  return Operand{dq->input(0), *params};
}

struct Match {
  ir::Node* node = nullptr;
  Operand x, w;
  size_t w_channel_axis = 0;           // of W as stored: 0 outermost, 1 innermost
  std::optional<std::vector<float>> bias;  // per output channel, already × beta
  ir::Node* relu = nullptr;
  ir::Node* q = nullptr;               // the QuantizeLinear reading the result
  std::optional<QdqParams> y;
};

std::optional<std::vector<float>> biasValues(const ir::Value* b, int64_t channels) {
  if (!b) return std::nullopt;
  std::optional<std::vector<float>> values = constantFloats(b);
  if (const ir::Node* dq = producerOf(b, "DequantizeLinear")) {  // an int32 bias in QDQ form (zero point 0)
    auto ints = constantInts(dq->input(0));
    if (!ints || !dq->input(1) || !constantFloats(dq->input(1))) return std::nullopt;
    std::vector<float> scales = *constantFloats(dq->input(1));
    values = std::vector<float>(ints->size());
    for (size_t i = 0; i < ints->size(); ++i) (*values)[i] = (*ints)[i] * scales[scales.size() == 1 ? 0 : i];
  }
  if (!values || static_cast<int64_t>(values->size()) != channels) return std::nullopt;
  return values;
}

std::optional<Match> match(const ir::Graph& graph, ir::Node& n) {
  if (!n.domain.empty() || n.outputs.empty() || !n.outputs[0]) return std::nullopt;
  if (n.op_type != "Conv" && n.op_type != "MatMul" && n.op_type != "Gemm") return std::nullopt;
  Match m;
  m.node = &n;
  auto x = dequantized(n.input(0));
  auto w = dequantized(n.input(1));
  if (!x || !w || !x->params.perTensor() || !w->q->isConstant()) return std::nullopt;
  const std::vector<int64_t>& w_dims = w->q->constant->dims();
  if (n.op_type == "Conv") {
    if (w_dims.size() < 3) return std::nullopt;
    m.w_channel_axis = 0;
  } else {
    if (w_dims.size() != 2) return std::nullopt;
    bool trans_b = n.op_type == "Gemm" && intAttribute(n, "transB", 0) != 0;
    if (n.op_type == "Gemm" && intAttribute(n, "transA", 0) != 0) return std::nullopt;
    m.w_channel_axis = trans_b ? 0 : 1;
  }
  int64_t channels = m.w_channel_axis == 0 ? w_dims.front() : w_dims.back();
  if (!w->params.perTensor()) {
    int64_t axis = w->params.axis < 0 ? w->params.axis + static_cast<int64_t>(w_dims.size()) : w->params.axis;
    int64_t want = m.w_channel_axis == 0 ? 0 : static_cast<int64_t>(w_dims.size()) - 1;
    if (axis != want || static_cast<int64_t>(w->params.scales.size()) != channels) return std::nullopt;
  }
  m.x = *x;
  m.w = *w;
  if (ir::Value* b = n.input(2)) {
    m.bias = biasValues(b, channels);
    if (!m.bias) return std::nullopt;
    if (n.op_type == "Gemm")
      for (float& v : *m.bias) v *= floatAttribute(n, "beta", 1.0f);
  }
  // The Q (and Relu) after it, for the QLinear forms.
  ir::Value* y = n.outputs[0];
  std::vector<ir::Node*> users = graph.usersOf(y);
  if (users.size() == 1 && !escapes(graph, y) && users[0]->domain.empty()) {
    ir::Node* next = users[0];
    if (next->op_type == "Relu") {
      std::vector<ir::Node*> after = graph.usersOf(next->outputs[0]);
      if (after.size() == 1 && !escapes(graph, next->outputs[0]) && after[0]->op_type == "QuantizeLinear") {
        m.relu = next;
        next = after[0];
      }
    }
    if (next->op_type == "QuantizeLinear" && next->input(0) && (m.relu ? next->input(0) == m.relu->outputs[0] : true)) {
      m.y = qdqParams(*next);
      m.q = next;
      if (!m.y || !m.y->perTensor()) m.q = nullptr, m.relu = nullptr;
      if (m.q && m.relu) {
        int32_t type_min = m.y->qtype == ir::DType::kUInt8 ? 0 : -128;
        int32_t zp = m.y->zero_points.empty() ? 0 : m.y->zero_points[0];
        if (zp != type_min) m.q = nullptr, m.relu = nullptr;
      }
    }
  }
  return m;
}

float scaleAt(const QdqParams& p, size_t c) { return p.scales[p.perTensor() ? 0 : c]; }

std::vector<int32_t> int32Bias(const Match& m, size_t channels) {
  std::vector<int32_t> out(channels, 0);
  if (!m.bias) return out;
  for (size_t c = 0; c < channels; ++c) {
    double q = std::nearbyint(static_cast<double>((*m.bias)[c]) / (static_cast<double>(m.x.params.scales[0]) * scaleAt(m.w.params, c)));
    out[c] = static_cast<int32_t>(std::clamp(q, -2147483648.0, 2147483647.0));
  }
  return out;
}

// A zero point as an input: the given ones, or zeros of the operand's type.
ir::Value* zeroPoint(ir::Graph& graph, const std::string& name, const QdqParams& p, ir::DType dtype) {
  std::vector<int32_t> zps = p.zero_points.empty() ? std::vector<int32_t>(p.scales.size(), 0) : p.zero_points;
  std::vector<int64_t> dims = p.perTensor() ? std::vector<int64_t>{} : std::vector<int64_t>{static_cast<int64_t>(zps.size())};
  return int8Constant(graph, name, dtype, dims, zps);
}

ir::Value* scaleInput(ir::Graph& graph, const std::string& name, const QdqParams& p) {
  std::vector<int64_t> dims = p.perTensor() ? std::vector<int64_t>{} : std::vector<int64_t>{static_cast<int64_t>(p.scales.size())};
  return floatConstant(graph, name, dims, p.scales);
}

// Makes `node`'s (single) output the existing value `out`, so the value keeps
// its name and readers; the node's own new output is left unused.
void takeOver(ir::Node* node, ir::Value* out) {
  ir::Value* fresh = node->outputs[0];
  node->outputs[0] = out;
  out->producer = node;
  out->producer_output = 0;
  fresh->producer = nullptr;
}

void foldQLinear(ir::Graph& graph, Match& m) {
  ir::Node& n = *m.node;
  const std::string& base = n.name.empty() ? n.outputs[0]->name : n.name;
  bool conv = n.op_type == "Conv";
  std::vector<ir::Value*> inputs = {m.x.q, scaleInput(graph, base + "_x_scale", m.x.params),
                                    zeroPoint(graph, base + "_x_zero_point", m.x.params, m.x.q->type.dtype),
                                    m.w.q, scaleInput(graph, base + "_w_scale", m.w.params),
                                    zeroPoint(graph, base + "_w_zero_point", m.w.params, m.w.q->type.dtype),
                                    m.q->input(1), m.q->input(2) ? m.q->input(2) : zeroPoint(graph, base + "_y_zero_point", *m.y, m.y->qtype)};
  if (conv && m.bias) {
    size_t m_out = static_cast<size_t>(m.w.q->constant->dims()[0]);
    inputs.push_back(int32Constant(graph, base + "_bias_int32", {static_cast<int64_t>(m_out)}, int32Bias(m, m_out)));
  }
  ir::Node* folded = addNode(graph, conv ? "QLinearConv" : "QLinearMatMul", base, inputs, base + "_qlinear");
  if (conv)
    for (const auto& [key, attr] : n.attributes) folded->attributes[key] = attr;
  takeOver(folded, m.q->outputs[0]);
  graph.eraseNode(m.q);
  if (m.relu) graph.eraseNode(m.relu);
  graph.eraseNode(&n);
}

// W as the integer op wants it: Conv's as stored, a matrix as [K, N].
ir::Value* integerWeight(ir::Graph& graph, const Match& m, const std::string& base) {
  if (m.node->op_type == "Conv" || m.w_channel_axis == 1) return m.w.q;
  const std::vector<int64_t>& d = m.w.q->constant->dims();  // [N, K]
  std::vector<int32_t> w = *constantInts(m.w.q), t(w.size());
  for (int64_t r = 0; r < d[0]; ++r)
    for (int64_t c = 0; c < d[1]; ++c) t[c * d[0] + r] = w[r * d[1] + c];
  return int8Constant(graph, base + "_weight_kn", m.w.q->type.dtype, {d[1], d[0]}, t);
}

void foldInteger(ir::Graph& graph, Match& m) {
  ir::Node& n = *m.node;
  const std::string& base = n.name.empty() ? n.outputs[0]->name : n.name;
  bool conv = n.op_type == "Conv";
  const std::vector<int64_t>& w_dims = m.w.q->constant->dims();
  int64_t channels = m.w_channel_axis == 0 ? w_dims.front() : w_dims.back();
  // Per-channel constants broadcast along the result's channel axis: [M,1,..,1] for Conv, [N] for a matrix.
  std::vector<int64_t> bdims = {channels};
  if (conv) bdims.resize(w_dims.size() - 1, 1);
  bool w_zero = true;
  for (int32_t z : m.w.params.zero_points) w_zero = w_zero && z == 0;
  std::vector<ir::Value*> inputs = {m.x.q, integerWeight(graph, m, base),
                                    zeroPoint(graph, base + "_x_zero_point", m.x.params, m.x.q->type.dtype)};
  if (!w_zero) inputs.push_back(zeroPoint(graph, base + "_w_zero_point", m.w.params, m.w.q->type.dtype));
  ir::Node* acc = addNode(graph, conv ? "ConvInteger" : "MatMulInteger", base + "/integer", inputs, base + "_int32");
  if (conv)
    for (const auto& [key, attr] : n.attributes) acc->attributes[key] = attr;
  ir::Value* sum = acc->outputs[0];
  if (m.bias)
    sum = addNode(graph, "Add", base + "/bias", {sum, int32Constant(graph, base + "_bias_int32", bdims, int32Bias(m, channels))},
                  base + "_biased")->outputs[0];
  ir::Node* cast = addNode(graph, "Cast", base + "/to_float", {sum}, base + "_float");
  setIntAttribute(cast, "to", static_cast<int64_t>(ir::DType::kFloat32));
  float alpha = n.op_type == "Gemm" ? floatAttribute(n, "alpha", 1.0f) : 1.0f;
  std::vector<float> scales(static_cast<size_t>(channels));
  for (size_t c = 0; c < scales.size(); ++c) scales[c] = alpha * m.x.params.scales[0] * scaleAt(m.w.params, c);
  ir::Node* mul = addNode(graph, "Mul", base + "/dequantize",
                          {cast->outputs[0], floatConstant(graph, base + "_output_scale", bdims, scales)}, base + "_scaled");
  takeOver(mul, n.outputs[0]);
  graph.eraseNode(&n);
}

// Q(MaxPool(DQ(x_q))) as MaxPool(x_q), when DQ and Q agree (see above), the
// pool has no Indices output and the model's opset (12+) lets MaxPool take
// 8-bit data.
bool foldMaxPool(ir::Graph& graph, ir::Node& pool, int64_t opset) {
  if (opset < 12 || !pool.domain.empty() || pool.op_type != "MaxPool" || pool.outputs.size() != 1 || !pool.outputs[0]) return false;
  const ir::Node* dq = producerOf(pool.input(0), "DequantizeLinear");
  std::vector<ir::Node*> users = graph.usersOf(pool.outputs[0]);
  if (!dq || users.size() != 1 || escapes(graph, pool.outputs[0]) || !users[0]->domain.empty() ||
      users[0]->op_type != "QuantizeLinear")
    return false;
  ir::Node* q = users[0];
  auto in = qdqParams(*dq);
  auto out = qdqParams(*q);
  if (!in || !out || !in->perTensor() || !out->perTensor() || !(in->scales[0] > 0) || in->scales != out->scales ||
      in->qtype != out->qtype)
    return false;
  auto zero = [](const QdqParams& p) { return p.zero_points.empty() ? 0 : p.zero_points[0]; };
  if (zero(*in) != zero(*out)) return false;
  ir::Node* folded = addNode(graph, "MaxPool", pool.name, {dq->input(0)}, pool.outputs[0]->name + "_quantized");
  folded->attributes = pool.attributes;
  takeOver(folded, q->outputs[0]);
  graph.eraseNode(q);
  graph.eraseNode(&pool);
  return true;
}

class FoldQdq : public Pass {
 public:
  std::string_view name() const override { return "fold-qdq"; }
  std::string_view summary() const override {
    return "fold DequantizeLinear -> Conv/MatMul/Gemm [-> Relu] -> QuantizeLinear into QLinearConv, QLinearMatMul, "
           "ConvInteger or MatMulInteger";
  }
  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    std::vector<ir::Node*> nodes;
    for (const auto& n : graph.nodes())  // only the products: a rewrite erases the Relu/Q after one
      if (n->op_type == "Conv" || n->op_type == "MatMul" || n->op_type == "Gemm" || n->op_type == "MaxPool")
        nodes.push_back(n.get());
    bool changed = false;
    for (ir::Node* n : nodes) {
      if (n->op_type == "MaxPool") {
        changed = foldMaxPool(graph, *n, model.opsetFor("")) || changed;
        continue;
      }
      auto m = match(graph, *n);
      if (!m) continue;
      if (m->q && (n->op_type == "Conv" || (n->op_type == "MatMul" && !m->bias))) foldQLinear(graph, *m);
      else foldInteger(graph, *m);
      changed = true;
    }
    if (!changed) return false;
    // New nodes were appended: order first, since removeDeadNodes walks
    // the graph backwards in topological order.
    KILN_RETURN_IF_ERROR(graph.sortTopologically());
    graph.removeDeadNodes();
    graph.removeUnusedValues();
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldQdq() { return std::make_unique<FoldQdq>(); }

}  // namespace kiln::passes
