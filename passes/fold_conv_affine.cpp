// fold-conv-affine: a per-output-channel affine map applied to a Conv's
// result is folded into the Conv's weights and bias:
//   BatchNormalization (inference):  W' = W·s, b' = (b − mean)·s + B, s = scale/√(var+ε)
//   Mul by a constant c[m]:          W' = W·c, b' = b·c
//   Add / Sub of a constant c[m]:    b' = b ± c
//   Div by a constant c[m]:          W' = W/c, b' = b/c
// where the constant broadcasts along the channel axis only (shape [M],
// [M,1,1], [1,M,1,1] or a scalar). The Conv then produces the folded node's
// output (its name kept) and the folded node is dropped.
// Only when the Conv's weight (and bias, if any) are float32 constants and its
// output has this one reader, is not a graph output and is not captured.
// Requires: shapes inferred.
#include <cmath>
#include <string>

#include "passes/pass.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

// scale and shift per output channel: y = x·scale + shift.
struct ChannelAffine {
  std::vector<double> scale, shift;
};

std::optional<std::vector<double>> floatValues(const ir::Value* v) {
  if (!v || !v->isConstant() || v->constant->dtype() != ir::DType::kFloat32) return std::nullopt;
  std::vector<double> out(v->constant->elementCount());
  for (size_t i = 0; i < out.size(); ++i) out[i] = v->constant->floatAt(static_cast<int64_t>(i));
  return out;
}

// The constant as one value per channel of a [N, M, ...] tensor of rank
// `rank`, or nullopt when it varies along another axis or widens the result.
std::optional<std::vector<double>> perChannel(const ir::Value* c, size_t rank, int64_t channels) {
  auto values = floatValues(c);
  if (!values) return std::nullopt;
  const std::vector<int64_t>& dims = c->constant->dims();
  if (dims.size() > rank) return std::nullopt;
  bool along_channels = false;
  for (size_t k = 0; k < dims.size(); ++k) {
    size_t axis = rank - dims.size() + k;
    if (dims[k] == 1) continue;
    if (axis != 1 || dims[k] != channels) return std::nullopt;
    along_channels = true;
  }
  if (!along_channels) return std::vector<double>(channels, (*values)[0]);
  return values;
}

std::optional<ChannelAffine> batchNorm(const ir::Node& bn, int64_t channels) {
  const ir::Attribute* training = bn.attribute("training_mode");
  if (training && training->i != 0) return std::nullopt;
  const ir::Attribute* eps_attr = bn.attribute("epsilon");
  double eps = eps_attr ? eps_attr->f : 1e-5;
  auto scale = floatValues(bn.input(1)), bias = floatValues(bn.input(2));
  auto mean = floatValues(bn.input(3)), var = floatValues(bn.input(4));
  if (!scale || !bias || !mean || !var) return std::nullopt;
  for (const auto* v : {&*scale, &*bias, &*mean, &*var})
    if (static_cast<int64_t>(v->size()) != channels) return std::nullopt;
  ChannelAffine a;
  for (int64_t m = 0; m < channels; ++m) {
    double s = (*scale)[m] / std::sqrt((*var)[m] + eps);
    a.scale.push_back(s);
    a.shift.push_back((*bias)[m] - (*mean)[m] * s);
  }
  return a;
}

// What `reader` does to the Conv output `x` of rank `rank`, if it is a
// per-channel affine map.
std::optional<ChannelAffine> affineOf(const ir::Node& reader, const ir::Value* x, size_t rank, int64_t channels) {
  if (!reader.domain.empty()) return std::nullopt;
  const std::string& op = reader.op_type;
  if (op == "BatchNormalization") {
    if (reader.input(0) != x) return std::nullopt;
    return batchNorm(reader, channels);
  }
  if (reader.inputs.size() != 2) return std::nullopt;
  bool x_first = reader.input(0) == x;
  const ir::Value* other = x_first ? reader.input(1) : reader.input(0);
  if (other == x) return std::nullopt;
  auto c = perChannel(other, rank, channels);
  if (!c) return std::nullopt;
  ChannelAffine a{std::vector<double>(channels, 1.0), std::vector<double>(channels, 0.0)};
  if (op == "Mul") a.scale = *c;
  else if (op == "Add") a.shift = *c;
  else if (op == "Sub" && x_first) for (int64_t m = 0; m < channels; ++m) a.shift[m] = -(*c)[m];
  else if (op == "Sub") {  // c - x
    a.scale.assign(channels, -1.0);
    a.shift = *c;
  } else if (op == "Div" && x_first) for (int64_t m = 0; m < channels; ++m) a.scale[m] = 1.0 / (*c)[m];
  else return std::nullopt;
  return a;
}

std::string uniqueName(const ir::Graph& graph, const std::string& base) {
  std::string name = base;
  for (int i = 1; graph.findValue(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

ir::Value* floatConstant(ir::Graph& graph, const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& values) {
  ir::Value* v = graph.addValue(uniqueName(graph, name));
  v->constant = ir::Tensor::fromValues<float>(ir::DType::kFloat32, std::move(dims), values);
  v->type = v->constant->type();
  return v;
}

class FoldConvAffine final : public Pass {
 public:
  std::string_view name() const override { return "fold-conv-affine"; }
  std::string_view summary() const override {
    return "fold BatchNormalization and per-channel Mul/Add/Sub/Div into the preceding Conv's weights and bias";
  }
  Expected<bool> run(ir::Model& model) override {
    bool changed = false;
    ir::Graph& graph = model.graph;
    auto captured = capturedBySubgraphs(graph);
    std::vector<ir::Node*> convs;
    for (const auto& node : graph.nodes())
      if (node->op_type == "Conv" && node->domain.empty()) convs.push_back(node.get());
    for (ir::Node* conv : convs)
      while (foldOne(graph, *conv, captured)) changed = true;  // Conv→BN→Mul→Add folds step by step
    if (changed) graph.removeUnusedValues();
    return changed;
  }

 private:
  static bool foldOne(ir::Graph& graph, ir::Node& conv, const std::unordered_set<const ir::Value*>& captured) {
    ir::Value* x = conv.outputs.empty() ? nullptr : conv.outputs[0];
    if (!x || isGraphOutput(graph, x) || captured.count(x) || !x->type.hasKnownShape()) return false;
    const ir::Value* w = conv.input(1);
    if (!w || !w->isConstant() || w->constant->dtype() != ir::DType::kFloat32) return false;
    std::vector<ir::Node*> readers = graph.usersOf(x);
    if (readers.size() != 1) return false;
    ir::Node& reader = *readers[0];
    ir::Value* y = reader.outputs.empty() ? nullptr : reader.outputs[0];
    if (!y || y->isConstant() || y->type.dtype != ir::DType::kFloat32 || !(y->type.shape == x->type.shape))
      return false;
    for (size_t i = 1; i < reader.outputs.size(); ++i)  // BatchNormalization's training outputs
      if (reader.outputs[i] && (isGraphOutput(graph, reader.outputs[i]) || !graph.usersOf(reader.outputs[i]).empty()))
        return false;
    const std::vector<int64_t> wdims = w->constant->dims();
    int64_t channels = wdims.empty() ? 0 : wdims[0];
    auto affine = affineOf(reader, x, x->type.shape->size(), channels);
    if (!affine || channels == 0) return false;
    // Only now read the weights: most Convs are not followed by an affine map.
    auto weights = floatValues(w);
    std::optional<std::vector<double>> bias;
    if (conv.input(2)) {
      bias = floatValues(conv.input(2));
      if (!bias) return false;
    }
    if (!weights) return false;

    int64_t per_channel = static_cast<int64_t>(weights->size()) / channels;
    std::vector<float> new_weights(weights->size()), new_bias(channels);
    for (int64_t m = 0; m < channels; ++m) {
      for (int64_t k = 0; k < per_channel; ++k)
        new_weights[m * per_channel + k] = static_cast<float>((*weights)[m * per_channel + k] * affine->scale[m]);
      double b = bias ? (*bias)[m] : 0.0;
      new_bias[m] = static_cast<float>(b * affine->scale[m] + affine->shift[m]);
    }
    std::string base = conv.name.empty() ? x->name : conv.name;
    conv.inputs.resize(3);
    conv.inputs[1] = floatConstant(graph, base + "/folded_weight", wdims, new_weights);
    conv.inputs[2] = floatConstant(graph, base + "/folded_bias", {channels}, new_bias);
    // The Conv now produces the reader's output, name and all.
    for (ir::Value*& out : reader.outputs)
      if (out == y) out = nullptr;
    conv.outputs[0] = y;
    y->producer = &conv;
    y->producer_output = 0;
    x->producer = nullptr;
    graph.eraseNode(&reader);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldConvAffine() { return std::make_unique<FoldConvAffine>(); }

}  // namespace kiln::passes
