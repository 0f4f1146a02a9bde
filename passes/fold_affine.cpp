// fold-affine: a per-output-channel affine map y = x·s + t applied to the
// result of a linear op with constant weights is folded into those weights
// and the op's bias. The maps recognised:
//   BatchNormalization (inference):  s = scale/√(var+ε), t = B − mean·s
//   Mul by a constant c[m]:          s = c
//   Add / Sub of a constant c[m]:    t = ±c   (c − x: s = −1, t = c)
//   Div by a constant c[m]:          s = 1/c
// where the constant varies along the channel axis only (for a Conv output
// [N, M, ...]: shape [M], [M,1,1], [1,M,1,1] or a scalar). The linear ops:
//   Conv, ConvTranspose  channel axis 1; W' = W·s per output channel, b' = b·s + t
//   Gemm                 channel axis 1 of [M, N]; B' = B·s per column, and
//                        C' = β·C·s + t with β set to 1 (C a constant or absent)
//   MatMul               channel axis −1, B a rank-2 constant [K, N]; B' = B·s.
//                        MatMul has no bias: a map with a shift becomes Add(t),
//                        and a plain Add/Sub is left alone (nothing to gain).
// The linear op then produces the folded node's output (its name kept) and
// the folded node is dropped. Only when the weights (and bias) are float32
// constants and the linear op's output has this one reader, is not a graph
// output and is not captured.
// Requires: shapes inferred.
#include <cmath>
#include <string>

#include "passes/pass.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

// y = x·scale + shift, per output channel.
struct ChannelAffine {
  std::vector<double> scale, shift;

  bool hasShift() const {
    for (double t : shift)
      if (t != 0) return true;
    return false;
  }
  bool isShiftOnly() const {
    for (double s : scale)
      if (s != 1) return false;
    return true;
  }
};

std::optional<std::vector<double>> floatValues(const ir::Value* v) {
  if (!v || !v->isConstant() || v->constant->dtype() != ir::DType::kFloat32) return std::nullopt;
  std::vector<double> out(v->constant->elementCount());
  for (size_t i = 0; i < out.size(); ++i) out[i] = v->constant->floatAt(static_cast<int64_t>(i));
  return out;
}

// The constant as one value per channel of a result of rank `rank` whose
// channels lie along `axis`, or nullopt when it varies along another axis or
// widens the result.
std::optional<std::vector<double>> perChannel(const ir::Value* c, size_t rank, size_t axis, int64_t channels) {
  auto values = floatValues(c);
  if (!values) return std::nullopt;
  const std::vector<int64_t>& dims = c->constant->dims();
  if (dims.size() > rank) return std::nullopt;
  bool along_channels = false;
  for (size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 1) continue;
    if (rank - dims.size() + k != axis || dims[k] != channels) return std::nullopt;
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

// What `reader` does to `x` (rank `rank`, channels along `axis`), if it is a
// per-channel affine map. BatchNormalization normalizes axis 1 only.
std::optional<ChannelAffine> affineOf(const ir::Node& reader, const ir::Value* x, size_t rank, size_t axis,
                                      int64_t channels) {
  if (!reader.domain.empty()) return std::nullopt;
  const std::string& op = reader.op_type;
  if (op == "BatchNormalization") {
    if (reader.input(0) != x || axis != 1) return std::nullopt;
    return batchNorm(reader, channels);
  }
  if (reader.inputs.size() != 2) return std::nullopt;
  bool x_first = reader.input(0) == x;
  const ir::Value* other = x_first ? reader.input(1) : reader.input(0);
  if (other == x) return std::nullopt;
  auto c = perChannel(other, rank, axis, channels);
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

int64_t intAttribute(const ir::Node& node, const char* name, int64_t fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->i : fallback;
}

float floatAttribute(const ir::Node& node, const char* name, float fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->f : fallback;
}

// A linear op with constant weights, as this pass sees it: where its output
// channels lie, how many there are, and which output channel each weight
// element feeds.
struct LinearOp {
  enum class Kind { kConv, kConvTranspose, kGemm, kMatMul } kind;
  size_t axis = 1;  // channel axis of the output
  int64_t channels = 0;
  std::vector<int64_t> wdims;

  static std::optional<LinearOp> of(const ir::Node& node) {
    if (!node.domain.empty()) return std::nullopt;
    const ir::Value* w = node.input(1);
    const ir::Value* y = node.outputs.empty() ? nullptr : node.outputs[0];
    if (!w || !w->isConstant() || w->constant->dtype() != ir::DType::kFloat32 || !y || !y->type.hasKnownShape())
      return std::nullopt;
    LinearOp op;
    op.wdims = w->constant->dims();
    size_t rank = y->type.shape->size();
    if (node.op_type == "Conv" && !op.wdims.empty()) {
      op.kind = Kind::kConv;
      op.channels = op.wdims[0];
    } else if (node.op_type == "ConvTranspose" && op.wdims.size() >= 2) {
      op.kind = Kind::kConvTranspose;
      op.channels = op.wdims[1] * intAttribute(node, "group", 1);
    } else if (node.op_type == "Gemm" && op.wdims.size() == 2 && rank == 2) {
      op.kind = Kind::kGemm;
      op.channels = op.wdims[intAttribute(node, "transB", 0) ? 0 : 1];
    } else if (node.op_type == "MatMul" && op.wdims.size() == 2 && rank >= 1) {
      op.kind = Kind::kMatMul;
      op.axis = rank - 1;
      op.channels = op.wdims[1];
    } else {
      return std::nullopt;
    }
    if (op.channels <= 0 || op.axis >= rank) return std::nullopt;
    return op;
  }

  // The output channel weight element `i` contributes to.
  int64_t channelOf(const ir::Node& node, int64_t i) const {
    switch (kind) {
      case Kind::kConv:
        return i / (elementCount() / channels);
      case Kind::kConvTranspose: {  // W: [C, M/group, k...]; input channel c is in group c / (C/group)
        int64_t per_out = wdims[1], kernel = elementCount() / (wdims[0] * per_out);
        int64_t c = i / (per_out * kernel), j = (i / kernel) % per_out;
        int64_t groups = intAttribute(node, "group", 1);
        return c / (wdims[0] / groups) * per_out + j;
      }
      case Kind::kGemm:
        return intAttribute(node, "transB", 0) ? i / wdims[1] : i % wdims[1];
      case Kind::kMatMul:
        return i % wdims[1];
    }
    return 0;
  }

  int64_t elementCount() const {
    int64_t n = 1;
    for (int64_t d : wdims) n *= d;
    return n;
  }
};

class FoldAffine final : public Pass {
 public:
  std::string_view name() const override { return "fold-affine"; }
  std::string_view summary() const override {
    return "fold BatchNormalization and per-channel Mul/Add/Sub/Div into the preceding Conv, ConvTranspose, Gemm or "
           "MatMul's weights and bias";
  }
  Expected<bool> run(ir::Model& model) override {
    bool changed = false;
    ir::Graph& graph = model.graph;
    auto captured = capturedBySubgraphs(graph);
    std::vector<ir::Node*> linear;
    for (const auto& node : graph.nodes())
      if (LinearOp::of(*node)) linear.push_back(node.get());
    for (ir::Node* node : linear)
      while (foldOne(graph, *node, captured)) changed = true;  // Conv→BN→Mul→Add folds step by step
    if (changed) graph.removeUnusedValues();
    return changed;
  }

 private:
  static bool foldOne(ir::Graph& graph, ir::Node& node, const std::unordered_set<const ir::Value*>& captured) {
    auto op = LinearOp::of(node);
    if (!op) return false;
    ir::Value* x = node.outputs[0];
    if (isGraphOutput(graph, x) || captured.count(x)) return false;
    std::vector<ir::Node*> readers = graph.usersOf(x);
    if (readers.size() != 1) return false;
    ir::Node& reader = *readers[0];
    ir::Value* y = reader.outputs.empty() ? nullptr : reader.outputs[0];
    if (!y || y->isConstant() || y->type.dtype != ir::DType::kFloat32 || !(y->type.shape == x->type.shape))
      return false;
    for (size_t i = 1; i < reader.outputs.size(); ++i)  // BatchNormalization's training outputs
      if (reader.outputs[i] && (isGraphOutput(graph, reader.outputs[i]) || !graph.usersOf(reader.outputs[i]).empty()))
        return false;
    auto affine = affineOf(reader, x, x->type.shape->size(), op->axis, op->channels);
    if (!affine) return false;
    bool is_matmul = op->kind == LinearOp::Kind::kMatMul;
    if (is_matmul && affine->isShiftOnly()) return false;  // MatMul → Add(t) again

    // The bias this op adds per output channel (or per element, for Gemm's C).
    std::optional<std::vector<double>> bias;
    std::vector<int64_t> bias_dims{op->channels};
    double beta = 1;
    if (!is_matmul && node.input(2)) {
      bias = floatValues(node.input(2));
      if (!bias) return false;
      if (op->kind == LinearOp::Kind::kGemm) {
        if (!gemmBiasDims(node.input(2)->constant->dims(), *x->type.shape, bias_dims)) return false;
        beta = floatAttribute(node, "beta", 1.0f);
      }
    }
    // Only now read the weights: most linear ops are not followed by an affine map.
    auto weights = floatValues(node.input(1));
    if (!weights) return false;

    std::vector<float> new_weights(weights->size());
    for (size_t i = 0; i < weights->size(); ++i)
      new_weights[i] = static_cast<float>((*weights)[i] * affine->scale[op->channelOf(node, static_cast<int64_t>(i))]);
    std::string base = node.name.empty() ? x->name : node.name;
    node.inputs.resize(std::max<size_t>(node.inputs.size(), 2));
    ir::Value* old_weights = node.inputs[1];
    node.inputs[1] = floatConstant(graph, base + "/folded_weight", op->wdims, new_weights);
    releaseIfUnread(graph, old_weights);

    if (is_matmul) {
      if (affine->hasShift()) {  // the reader becomes Add(x, t)
        std::vector<float> shift(affine->shift.begin(), affine->shift.end());
        reader.op_type = "Add";
        reader.attributes.clear();
        reader.inputs = {x, floatConstant(graph, base + "/folded_shift", {op->channels}, shift)};
        reader.outputs.resize(1);
        return true;
      }
    } else {
      int64_t elements = 1;
      for (int64_t d : bias_dims) elements *= d;
      std::vector<float> new_bias(elements);
      for (int64_t i = 0; i < elements; ++i) {
        int64_t m = i % op->channels;  // the channel axis is the bias's last
        double b = bias ? beta * (*bias)[bias->size() == 1 ? 0 : i] : 0.0;
        new_bias[i] = static_cast<float>(b * affine->scale[m] + affine->shift[m]);
      }
      node.inputs.resize(3);
      node.inputs[2] = floatConstant(graph, base + "/folded_bias", bias_dims, new_bias);
      if (op->kind == LinearOp::Kind::kGemm) {
        ir::Attribute one;
        one.kind = ir::Attribute::Kind::kFloat;
        one.f = 1.0f;
        node.attributes["beta"] = one;
      }
    }
    // The linear op now produces the reader's output, name and all.
    for (ir::Value*& out : reader.outputs)
      if (out == y) out = nullptr;
    node.outputs[0] = y;
    y->producer = &node;
    y->producer_output = 0;
    x->producer = nullptr;
    graph.eraseNode(&reader);
    return true;
  }

  // Gemm's C as a per-column bias ([N]) or a full [M, N] one; false for a C
  // that varies along rows only ([M, 1]), whose folded form would need both.
  static bool gemmBiasDims(const std::vector<int64_t>& c, const ir::Shape& out, std::vector<int64_t>& dims) {
    int64_t rows = out[0].value, cols = out[1].value;
    size_t count = 1;
    for (int64_t d : c) count *= static_cast<size_t>(d);
    if (count == 1 || (c.size() == 1 && c[0] == cols) || (c.size() == 2 && c[0] == 1 && c[1] == cols)) {
      dims = {cols};
      return true;
    }
    if (c.size() == 2 && c[0] == rows && c[1] == cols) {
      dims = {rows, cols};
      return true;
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldAffine() { return std::make_unique<FoldAffine>(); }

}  // namespace kiln::passes
