// recognize-layer-norm: the layer normalization that PyTorch's exporter (opset
// < 17) and many others write as elementwise ops and reductions,
//   mean = ReduceMean(x, axes=[-1])      d = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2) or Mul(d, d), axes=[-1])
//   y    = Div(d, Sqrt(Add(var, eps)))  [-> Mul(y, gamma)] [-> Add(y, beta)]
// becomes one LayerNormalization(x, gamma, beta) with axis -1 and epsilon
// eps; an absent gamma is ones, an absent beta zeros. Lowered, that is one
// kernel where the decomposed form took five.
//
// Only when x is float32 with a known last dim N, both ReduceMeans reduce
// the last axis alone (axis -1 or rank-1; axes an attribute before opset 18,
// a constant input from 18) with keepdims 1, eps is a constant of one
// element, gamma and beta are float32 constants varying along the last axis
// only (one value or N), every intermediate has the shape of x or of its
// statistics, and every intermediate is read only inside the pattern (d by
// the square and the Div) and is no graph output. The last node keeps its
// output name. LayerNormalization exists from opset 17: below that the pass
// writes Kiln's twin, kiln.LayerNormalization.
// Requires: shapes inferred.
#include <cmath>

#include "passes/pass.h"
#include "passes/quantize_graph.h"
#include "passes/subgraph_match.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

constexpr int64_t kLayerNormSince = 17;

// Whether ReduceMean `node` averages its input of rank `rank` over the last
// axis alone, keeping dims.
bool meanOverLastAxis(const ir::Node& node, size_t rank) {
  if (qgraph::intAttribute(node, "keepdims", 1) != 1) return false;
  std::vector<int64_t> axes;
  if (node.input(1)) {  // opset 18: a constant input
    if (!node.input(1)->isConstant()) return false;
    axes = node.input(1)->constant->toInts();
  } else if (const ir::Attribute* attr = node.attribute("axes")) {
    axes = attr->ints;
  }
  // No axes: every axis, unless opset 18's noop_with_empty_axes makes it the identity.
  if (axes.empty()) return rank == 1 && qgraph::intAttribute(node, "noop_with_empty_axes", 0) == 0;
  const int64_t last = static_cast<int64_t>(rank) - 1;
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == last);
}

// A constant that Mul/Add applies per element of the last axis (N of them)
// without widening x: all its dims 1 but maybe the last, which is N or 1.
std::optional<std::vector<float>> perLastAxis(const ir::Value* c, size_t rank, int64_t n) {
  if (!c || !c->isConstant() || c->constant->dtype() != ir::DType::kFloat32) return std::nullopt;
  const std::vector<int64_t>& dims = c->constant->dims();
  if (dims.size() > rank) return std::nullopt;
  for (size_t k = 0; k + 1 < dims.size(); ++k)
    if (dims[k] != 1) return std::nullopt;
  auto values = qgraph::constantFloats(c);
  if (values->size() == 1) return std::vector<float>(static_cast<size_t>(n), (*values)[0]);
  if (static_cast<int64_t>(values->size()) != n) return std::nullopt;
  return values;
}

struct LayerNormMatch : SubgraphMatch {
  ir::Value* x = nullptr;
  float epsilon = 0;
  std::vector<float> scale, bias;
};

class RecognizeLayerNorm final : public Pass {
 public:
  std::string_view name() const override { return "recognize-layer-norm"; }
  std::string_view summary() const override {
    return "turn the decomposed layer normalization of opset < 17 exporters (ReduceMean, Sub, Pow, Sqrt, Div...) into "
           "one LayerNormalization";
  }

  Expected<bool> run(ir::Model& model) override {
    captured_ = capturedBySubgraphs(model.graph);
    return rewriteEach(model.graph, "Div", [&](ir::Node& div) {
      std::optional<LayerNormMatch> match = matchAt(model.graph, div);
      if (match) rewrite(model, *match);
      return match.has_value();
    });
  }

 private:
  // The pattern ending in `div` = Div(d, Sqrt(Add(var, eps))), extended by
  // the Mul(gamma) and Add(beta) that follow it.
  std::optional<LayerNormMatch> matchAt(const ir::Graph& graph, ir::Node& div) const {
    ir::Value* d = div.input(0);
    ir::Node* sqrt = producerOf(div.input(1), "Sqrt");
    if (!sqrt || !inner(graph, div.input(1))) return std::nullopt;
    ir::Node* add = producerOf(sqrt->input(0), "Add");
    if (!add || !inner(graph, sqrt->input(0))) return std::nullopt;
    const bool eps_first = scalarConstant(add->input(0)).has_value();
    std::optional<double> eps = scalarConstant(add->input(eps_first ? 0 : 1));
    ir::Value* var = add->input(eps_first ? 1 : 0);
    ir::Node* var_mean = producerOf(var, "ReduceMean");
    if (!eps || !var_mean || !inner(graph, var)) return std::nullopt;
    ir::Node* square = squareOf(var_mean->input(0), d);
    if (!square || !inner(graph, var_mean->input(0))) return std::nullopt;
    ir::Node* sub = producerOf(d, "Sub");
    if (!sub || !innerValue(graph, d, 2, captured_)) return std::nullopt;  // read by the square and the Div
    ir::Value* x = sub->input(0);
    ir::Node* mean = producerOf(sub->input(1), "ReduceMean");
    if (!mean || mean->input(0) != x || !inner(graph, sub->input(1))) return std::nullopt;

    // Types: x float32 with a known last dim; d, its square and the Div have
    // x's type; the statistics (and var + eps) the same type as each other.
    if (!x || x->type.dtype != ir::DType::kFloat32 || !x->type.shape || x->type.shape->empty()) return std::nullopt;
    const size_t rank = x->type.shape->size();
    const ir::Dim& last = x->type.shape->back();
    if (!last.isKnown()) return std::nullopt;
    for (const ir::Value* v : {d, var_mean->input(0), div.outputs[0]})
      if (!(v->type == x->type)) return std::nullopt;
    for (const ir::Value* v : {var, add->outputs[0], sqrt->outputs[0], sub->input(1)})
      if (!(v->type == var->type)) return std::nullopt;
    if (!meanOverLastAxis(*mean, rank) || !meanOverLastAxis(*var_mean, rank)) return std::nullopt;

    LayerNormMatch match;
    match.x = x;
    match.epsilon = static_cast<float>(*eps);
    match.inner = {mean, sub, square, var_mean, add, sqrt};
    match.root = &div;
    match.scale.assign(static_cast<size_t>(last.value), 1.0f);
    match.bias.assign(static_cast<size_t>(last.value), 0.0f);
    extend(graph, match, "Mul", match.scale);
    extend(graph, match, "Add", match.bias);
    return match;
  }

  // The Pow(d, 2) or Mul(d, d) producing `p`.
  static ir::Node* squareOf(const ir::Value* p, const ir::Value* d) {
    if (ir::Node* pow = producerOf(p, "Pow"))
      return pow->input(0) == d && scalarConstant(pow->input(1)) == 2.0 ? pow : nullptr;
    ir::Node* mul = producerOf(p, "Mul");
    return mul && mul->input(0) == d && mul->input(1) == d ? mul : nullptr;
  }

  // Makes the one reader of the match's result its new root when it is
  // `op` (Mul or Add) with a constant per element of the last axis, which
  // becomes `values`.
  void extend(const ir::Graph& graph, LayerNormMatch& match, const char* op, std::vector<float>& values) const {
    ir::Value* y = match.root->outputs[0];
    if (!inner(graph, y)) return;
    ir::Node* reader = graph.usersOf(y)[0];
    if (!reader->domain.empty() || reader->op_type != op || reader->inputs.size() != 2) return;
    const ir::Value* c = reader->input(reader->input(0) == y ? 1 : 0);
    if (c == y || !(reader->outputs[0]->type == y->type)) return;
    auto per_axis = perLastAxis(c, match.x->type.shape->size(), static_cast<int64_t>(values.size()));
    if (!per_axis) return;
    values = std::move(*per_axis);
    match.inner.push_back(match.root);
    match.root = reader;
  }

  bool inner(const ir::Graph& graph, const ir::Value* v) const { return innerValue(graph, v, 1, captured_); }

  static void rewrite(ir::Model& model, const LayerNormMatch& match) {
    ir::Graph& graph = model.graph;
    const std::string base = match.root->name.empty() ? match.root->outputs[0]->name : match.root->name;
    const int64_t n = static_cast<int64_t>(match.scale.size());
    ir::Value* scale = qgraph::floatConstant(graph, base + "/scale", {n}, match.scale);
    ir::Value* bias = qgraph::floatConstant(graph, base + "/bias", {n}, match.bias);
    std::map<std::string, ir::Attribute> attributes;
    attributes["axis"].kind = ir::Attribute::Kind::kInt;
    attributes["axis"].i = -1;
    attributes["epsilon"].kind = ir::Attribute::Kind::kFloat;
    attributes["epsilon"].f = match.epsilon;
    replaceMatch(graph, match, "LayerNormalization", domainFor(model, kLayerNormSince), {match.x, scale, bias},
                 std::move(attributes));
  }

  std::unordered_set<const ir::Value*> captured_;
};

}  // namespace

std::unique_ptr<Pass> createRecognizeLayerNorm() { return std::make_unique<RecognizeLayerNorm>(); }

}  // namespace kiln::passes
