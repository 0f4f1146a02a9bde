// recognize-attention: scaled-dot-product attention as PyTorch's exporter
// writes it from `softmax(q @ k.transpose(-2, -1) / sqrt(d) + mask) @ v`
// (torch.nn code, HuggingFace's BERT and its relatives),
//
//   s = MatMul(Q, Kt) [-> Div(s, c) | Mul(s, c) | Mul(c, s)]
//       [-> Where(keep, s, fill) | Where(drop, fill, s)] [-> Add(s, mask) | Add(mask, s)]
//   p = Softmax(s, last axis)
//   y = MatMul(p, V)
//
// becomes one kiln.Attention(Q, Kt, V, c, mask) (compiler/ops/attention.cpp),
// which lowers to one kernel: the CPU backend runs its six stages head by
// head, with each head's scores in cache between them, where the chain took
// four kernels (K's layout, the scores, Softmax, the context), each a pass
// over all heads' scores.
//
// Only when Q, Kt and V are float32 of known shapes and one rank of at least
// 3, with the same batch dims (no broadcasting between them), c is a float32
// constant of one element, the mask (any float32 value) and the Where's
// condition (bool; GPT-2's causal mask) broadcast to the scores' shape
// without widening it, the Where's fill is a float32 value of one element, Softmax normalizes the last axis
// (axis -1 or rank-1, at any opset), and every intermediate is read once,
// inside the match, and is no graph output. The last MatMul keeps its output
// name. kiln.Attention is Kiln's own op, so the -O pipeline runs this pass
// only for the CPU (CUDA runs the scores and the context as cuBLASLt GEMMs)
// and not when the graph is written back as ONNX.
// Requires: shapes inferred.
#include <algorithm>

#include "compiler/ops/op_registry.h"
#include "passes/pass.h"
#include "passes/subgraph_match.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

constexpr size_t kMinRank = 3;

struct AttentionMatch : SubgraphMatch {
  ir::Value* q = nullptr;
  ir::Value* kt = nullptr;
  ir::Value* v = nullptr;
  ir::Value* scale = nullptr;  // or nullptr
  ir::Value* mask = nullptr;   // or nullptr
  ir::Value* keep = nullptr;   // Where's condition, or nullptr
  ir::Value* fill = nullptr;   // Where's other operand
  bool fill_when_true = false;
  bool scale_divides = false;
};

// Known dims of a float32 value, or nullopt.
std::optional<std::vector<int64_t>> float32Dims(const ir::Value* v) {
  if (!v || v->type.dtype != ir::DType::kFloat32 || !v->type.shape) return std::nullopt;
  return ir::knownDims(*v->type.shape);
}

class RecognizeAttention final : public Pass {
 public:
  std::string_view name() const override { return "recognize-attention"; }
  std::string_view summary() const override {
    return "turn MatMul -> [scale] -> [mask] -> Softmax -> MatMul (scaled-dot-product attention) into one "
           "kiln.Attention";
  }

  Expected<bool> run(ir::Model& model) override {
    captured_ = capturedBySubgraphs(model.graph);
    return rewriteEach(model.graph, "Softmax", [&](ir::Node& softmax) {
      std::optional<AttentionMatch> match = matchAt(model.graph, softmax, model.opsetFor(""));
      if (match) rewrite(model, *match);
      return match.has_value();
    });
  }

 private:
  // The Div or Mul producing `s`, read only there, when its other operand
  // is a constant of one element.
  ir::Node* scalingOf(const ir::Graph& graph, const ir::Value* s) const {
    if (!inner(graph, s)) return nullptr;
    if (ir::Node* div = producerOf(s, "Div")) return scalarConstant(div->input(1)) ? div : nullptr;
    ir::Node* mul = producerOf(s, "Mul");
    return mul && (scalarConstant(mul->input(0)) || scalarConstant(mul->input(1))) ? mul : nullptr;
  }

  // The operand of scalingOf's node that is scaled (the other is the constant).
  static size_t scaledOperand(const ir::Node& scaling) {
    return scaling.op_type == "Mul" && scalarConstant(scaling.input(0)) ? 1 : 0;
  }

  // Whether `s` is MatMul's output, maybe scaled, maybe then masked by a
  // Where, each read once.
  bool scoresBelow(const ir::Graph& graph, const ir::Value* s) const {
    if (ir::Node* where = producerOf(s, "Where"); where && inner(graph, s))
      return scoresBelow(graph, where->input(1)) || scoresBelow(graph, where->input(2));
    if (ir::Node* scaling = scalingOf(graph, s)) s = scaling->input(scaledOperand(*scaling));
    return producerOf(s, "MatMul") && inner(graph, s);
  }

  std::optional<AttentionMatch> matchAt(const ir::Graph& graph, ir::Node& softmax, int64_t opset) const {
    AttentionMatch match;
    // After the Softmax: its one reader, MatMul(p, V).
    ir::Value* p = softmax.outputs[0];
    if (!inner(graph, p)) return std::nullopt;
    ir::Node* context = graph.usersOf(p)[0];
    if (!context->domain.empty() || context->op_type != "MatMul" || context->input(0) != p || context->input(1) == p)
      return std::nullopt;
    // Before it: [Add mask] <- [scale] <- MatMul(Q, Kt).
    ir::Value* s = softmax.input(0);
    std::vector<ir::Node*> inner_nodes = {&softmax};
    if (ir::Node* add = producerOf(s, "Add"); add && inner(graph, s)) {
      // The scores are the operand that leads to the MatMul; a mask may be
      // computed by a Mul too ((1 - mask) * -10000).
      const int scores_at = scoresBelow(graph, add->input(0)) ? 0 : 1;
      match.mask = add->input(1 - scores_at);
      s = add->input(scores_at);
      if (match.mask == s || !(add->outputs[0]->type == s->type) || !float32Dims(match.mask)) return std::nullopt;
      inner_nodes.push_back(add);
    }
    if (ir::Node* where = producerOf(s, "Where"); where && inner(graph, s)) {
      // where(keep, s, fill) or where(drop, fill, s): the scores are the
      // operand that leads to the MatMul.
      match.fill_when_true = scoresBelow(graph, where->input(2));
      match.keep = where->input(0);
      match.fill = where->input(match.fill_when_true ? 1 : 2);
      s = where->input(match.fill_when_true ? 2 : 1);
      auto keep = match.keep && match.keep->type.shape ? ir::knownDims(*match.keep->type.shape) : std::nullopt;
      auto fill = float32Dims(match.fill);
      if (!keep || match.keep->type.dtype != ir::DType::kBool || !fill ||
          std::any_of(fill->begin(), fill->end(), [](int64_t d) { return d != 1; }) ||
          !(where->outputs[0]->type == s->type))
        return std::nullopt;
      inner_nodes.push_back(where);
    }
    if (ir::Node* scaling = scalingOf(graph, s)) {
      ir::Value* product = scaling->input(scaledOperand(*scaling));
      ir::Value* c = scaling->input(1 - scaledOperand(*scaling));
      if (c->type.dtype != ir::DType::kFloat32 || !(scaling->outputs[0]->type == product->type)) return std::nullopt;
      match.scale = c;
      match.scale_divides = scaling->op_type == "Div";
      s = product;
      inner_nodes.push_back(scaling);
    }
    ir::Node* scores = producerOf(s, "MatMul");
    if (!scores || !inner(graph, s)) return std::nullopt;
    inner_nodes.push_back(scores);
    match.q = scores->input(0);
    match.kt = scores->input(1);
    match.v = context->input(1);
    if (!shapesFit(match, softmax, opset)) return std::nullopt;
    match.root = context;
    match.inner = std::move(inner_nodes);
    return match;
  }

  // Q [..., Sq, D], Kt [..., D, Sk], V [..., Sk, Dv], float32, one rank, one
  // batch; Softmax over the last axis. (matchAt saw that the mask and the
  // Where do not widen the scores: their outputs have the scores' type.)
  static bool shapesFit(const AttentionMatch& m, const ir::Node& softmax, int64_t opset) {
    auto q = float32Dims(m.q), kt = float32Dims(m.kt), v = float32Dims(m.v);
    auto s = float32Dims(softmax.outputs[0]);
    if (!q || !kt || !v || !s || q->size() < kMinRank || kt->size() != q->size() || v->size() != q->size())
      return false;
    const size_t rank = q->size();
    for (size_t i = 0; i + 2 < rank; ++i)
      if ((*kt)[i] != (*q)[i] || (*v)[i] != (*q)[i]) return false;
    if ((*q)[rank - 1] != (*kt)[rank - 2] || (*kt)[rank - 1] != (*v)[rank - 2]) return false;
    if (s->size() != rank || (*s)[rank - 2] != (*q)[rank - 2] || (*s)[rank - 1] != (*kt)[rank - 1]) return false;
    const ir::Attribute* attr = softmax.attribute("axis");
    // Before opset 13 the default axis is 1 and Softmax flattens from the
    // axis on; at axis rank-1 that is the last axis alone either way.
    const int64_t axis = attr ? attr->i : opset >= 13 ? -1 : 1;
    return axis == -1 || axis == static_cast<int64_t>(rank) - 1;
  }

  bool inner(const ir::Graph& graph, const ir::Value* v) const { return innerValue(graph, v, 1, captured_); }

  static void rewrite(ir::Model& model, const AttentionMatch& match) {
    model.opset_imports[std::string(ops::kKilnDomain)] = 1;
    std::vector<ir::Value*> inputs = {match.q, match.kt, match.v};
    if (match.scale || match.mask || match.keep) inputs.push_back(match.scale);
    if (match.mask || match.keep) inputs.push_back(match.mask);
    if (match.keep) {
      inputs.push_back(match.keep);
      inputs.push_back(match.fill);
    }
    std::map<std::string, ir::Attribute> attributes;
    if (match.scale) {
      attributes["scale_divides"].kind = ir::Attribute::Kind::kInt;
      attributes["scale_divides"].i = match.scale_divides ? 1 : 0;
    }
    if (match.fill_when_true) {
      attributes["fill_when_true"].kind = ir::Attribute::Kind::kInt;
      attributes["fill_when_true"].i = 1;
    }
    replaceMatch(model.graph, match, "Attention", std::string(ops::kKilnDomain), std::move(inputs),
                 std::move(attributes));
  }

  std::unordered_set<const ir::Value*> captured_;
};

}  // namespace

std::unique_ptr<Pass> createRecognizeAttention() { return std::make_unique<RecognizeAttention>(); }

}  // namespace kiln::passes
