// The dynamic-int8 form of `quantize`: MatMul/Gemm with a constant float32
// weight W ([K, N] after Gemm's transB) become
//   DynamicQuantizeLinear(x) -> (x_u8, x_scale, x_zero_point)
//   MatMulInteger(x_u8, W_s8, x_zero_point) -> int32
//   Cast(float32) -> Mul(x_scale · alpha · w_scale[N]) [-> Add(beta · C)]
// with W quantized symmetric per output column (zero point 0, so
// MatMulInteger needs no b_zero_point). The last node produces the original
// output value, so its name and readers are kept.
// Requires: shapes inferred.
#include <cmath>

#include "passes/quantize.h"
#include "passes/quantize_graph.h"

namespace kiln::passes {
namespace {

using namespace qgraph;

bool dynamicCandidate(const ir::Node& n) {
  if (!n.domain.empty() || (n.op_type != "MatMul" && n.op_type != "Gemm")) return false;
  const ir::Value* x = n.input(0);
  const ir::Value* w = n.input(1);
  if (!x || x->isConstant() || x->type.dtype != ir::DType::kFloat32 || !x->type.shape) return false;
  if (!w || !w->isConstant() || w->constant->dtype() != ir::DType::kFloat32 || w->constant->dims().size() != 2)
    return false;
  if (n.op_type == "MatMul") return true;
  const ir::Value* c = n.input(2);
  return intAttribute(n, "transA", 0) == 0 && (!c || (c->isConstant() && c->constant->dtype() == ir::DType::kFloat32));
}

// W as [K, N] row-major.
std::vector<float> weightKN(const ir::Node& n, std::vector<int64_t>& dims) {
  std::vector<float> w = *constantFloats(n.input(1));
  dims = n.input(1)->constant->dims();
  if (n.op_type != "Gemm" || intAttribute(n, "transB", 0) == 0) return w;
  std::vector<float> t(w.size());
  int64_t rows = dims[0], cols = dims[1];  // [N, K]
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = w[r * cols + c];
  dims = {cols, rows};
  return t;
}

void rewrite(ir::Graph& graph, ir::Node& n) {
  std::vector<int64_t> dims;
  std::vector<float> w = weightKN(n, dims);
  std::vector<float> scales = quant::int8ChannelScales(w, dims, 1);
  int64_t cols = dims[1];
  std::vector<int32_t> q(w.size());
  for (size_t i = 0; i < w.size(); ++i) q[i] = quant::quantizeValue(w[i], scales[i % cols], 0, -127, 127);
  bool gemm = n.op_type == "Gemm";
  float alpha = gemm ? floatAttribute(n, "alpha", 1.0f) : 1.0f;
  float beta = gemm ? floatAttribute(n, "beta", 1.0f) : 1.0f;
  for (float& s : scales) s *= alpha;

  const std::string& base = n.name.empty() ? n.outputs[0]->name : n.name;
  ir::Node* dql = graph.addNode("DynamicQuantizeLinear", base + "/quantize_input");
  dql->inputs = {n.input(0)};
  for (const char* suffix : {"_quantized", "_scale", "_zero_point"}) {
    ir::Value* v = graph.addValue(uniqueName(graph, n.input(0)->name + suffix));
    v->producer = dql;
    v->producer_output = static_cast<int>(dql->outputs.size());
    dql->outputs.push_back(v);
  }
  ir::Value* wq = int8Constant(graph, n.input(1)->name + "_quantized", ir::DType::kInt8, dims, q);
  ir::Node* mm = addNode(graph, "MatMulInteger", base + "/matmul_integer", {dql->outputs[0], wq, dql->outputs[2]},
                         base + "_int32");
  ir::Node* cast = addNode(graph, "Cast", base + "/to_float", {mm->outputs[0]}, base + "_float");
  setIntAttribute(cast, "to", static_cast<int64_t>(ir::DType::kFloat32));
  ir::Value* w_scale = floatConstant(graph, n.input(1)->name + "_scale", {cols}, scales);
  ir::Node* scale = addNode(graph, "Mul", base + "/scale", {dql->outputs[1], w_scale}, base + "_scale");
  ir::Node* last = addNode(graph, "Mul", base + "/dequantize", {cast->outputs[0], scale->outputs[0]}, base + "_scaled");
  if (gemm && n.input(2)) {
    std::vector<float> c = *constantFloats(n.input(2));
    for (float& v : c) v *= beta;
    ir::Value* bias = floatConstant(graph, n.input(2)->name + "_scaled", n.input(2)->constant->dims(), c);
    last = addNode(graph, "Add", base + "/bias", {last->outputs[0], bias}, base + "_biased");
  }
  // The last node takes over the original output value.
  ir::Value* out = n.outputs[0];
  ir::Value* placeholder = last->outputs[0];
  last->outputs[0] = out;
  out->producer = last;
  out->producer_output = 0;
  n.outputs[0] = placeholder;
  placeholder->producer = &n;
  graph.eraseNode(&n);
}

}  // namespace

Expected<bool> quantizeDynamic(ir::Model& model) {
  ir::Graph& graph = model.graph;
  std::vector<ir::Node*> candidates;
  for (const auto& n : graph.nodes())
    if (dynamicCandidate(*n)) candidates.push_back(n.get());
  for (ir::Node* n : candidates) rewrite(graph, *n);
  if (candidates.empty()) return false;
  graph.removeUnusedValues();
  KILN_RETURN_IF_ERROR(graph.sortTopologically());
  return true;
}

}  // namespace kiln::passes
