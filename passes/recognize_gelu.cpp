// recognize-gelu: GELU's tanh approximation written out in elementwise ops,
//   0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
// as PyTorch exports GELU(approximate='tanh') and HuggingFace's "gelu_new"
// (x^3 as Pow(x, 3) or Mul(x, Mul(x, x)); the constants on either side, 0.5 * x
// taken first or last; Megatron's k·x·(1 + c·x·x) too), becomes one
// Gelu(x, approximate="tanh"). Decomposed, x is read by three nodes, so kernel
// fusion cannot take the MatMul or Conv that produces it into their kernel;
// Gelu's lowering builds x's load once, which fuse-kernels counts as one read,
// and the whole activation becomes the contraction's epilogue.
//
// The match is algebraic, not by node order: the Tanh's argument, expanded
// through Add, Sub, Mul, Neg, Div by a constant and Pow by a small integer,
// must be the polynomial k·x + k·c·x^3 in one value x, and a chain of such
// ops after the Tanh must come to 0.5·x + 0.5·x·tanh(..). Coefficients
// agree within 1e-6 relative (float32 roundings of the constants). Only when
// x is float32, every node of the match has x's type (no broadcasting), and
// every intermediate is read once, inside the match, and is no graph output.
// Gelu exists from opset 20: below that the pass writes Kiln's twin,
// kiln.Gelu.
// Requires: shapes inferred.
#include <cmath>
#include <map>
#include <numbers>
#include <set>
#include <unordered_map>

#include "passes/pass.h"
#include "passes/subgraph_match.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

constexpr int64_t kGeluSince = 20;
constexpr int kMaxDegree = 4;
constexpr size_t kMaxNodes = 24;

// A polynomial in x and t = tanh(..): coefficient by (power of x, power of t).
using Polynomial = std::map<std::pair<int, int>, double>;

Polynomial operator+(Polynomial a, const Polynomial& b) {
  for (const auto& [m, c] : b) a[m] += c;
  return a;
}

Polynomial scaled(Polynomial a, double s) {
  for (auto& [m, c] : a) c *= s;
  return a;
}

std::optional<Polynomial> product(const Polynomial& a, const Polynomial& b) {
  Polynomial p;
  for (const auto& [ma, ca] : a)
    for (const auto& [mb, cb] : b) {
      std::pair<int, int> m{ma.first + mb.first, ma.second + mb.second};
      if (m.first > kMaxDegree || m.second > kMaxDegree) return std::nullopt;
      p[m] += ca * cb;
    }
  return p;
}

std::optional<double> constantTerm(const Polynomial& p) {
  for (const auto& [m, c] : p)
    if (m != std::pair{0, 0} && c != 0) return std::nullopt;
  auto it = p.find({0, 0});
  return it == p.end() ? 0.0 : it->second;
}

// Whether `p` is `expected`, coefficient by coefficient within 1e-6 relative.
bool matches(const Polynomial& p, const Polynomial& expected) {
  for (const auto& [m, c] : p) {
    auto it = expected.find(m);
    double want = it == expected.end() ? 0.0 : it->second;
    if (std::abs(c - want) > 1e-6 * std::abs(want)) return false;
  }
  for (const auto& [m, want] : expected)
    if (!p.count(m)) return false;
  return true;
}

// Expands a value into a polynomial in x and t through the arithmetic ops
// whose results only the match reads, collecting those ops' nodes.
class Expansion {
 public:
  Expansion(const ir::Graph& graph, const std::unordered_set<const ir::Value*>& captured, const ir::Value* t)
      : graph_(graph), captured_(captured), t_(t) {}

  // `root` may have any readers; the values under it must be inner ones.
  std::optional<Polynomial> expand(ir::Value* root) { return expandValue(root, true); }

  ir::Value* x() const { return x_; }
  void setX(ir::Value* x) { x_ = x; }
  const std::vector<ir::Node*>& nodes() const { return nodes_; }

 private:
  std::optional<Polynomial> expandValue(ir::Value* v, bool is_root) {
    if (!v) return std::nullopt;
    if (auto it = expanded_.find(v); it != expanded_.end()) return it->second;  // Mul(v, v)
    std::optional<Polynomial> p = expandNew(v, is_root);
    if (p) expanded_[v] = *p;
    return p;
  }

  std::optional<Polynomial> expandNew(ir::Value* v, bool is_root) {
    if (v == t_) return Polynomial{{{0, 1}, 1.0}};
    if (std::optional<double> c = scalarConstant(v)) return Polynomial{{{0, 0}, *c}};
    ir::Node* node = v->producer;
    static const std::set<std::string> kArithmetic = {"Add", "Sub", "Mul", "Div", "Neg", "Pow"};
    const bool arithmetic = node && node->domain.empty() && kArithmetic.count(node->op_type) && node->outputs[0] == v;
    if (v == x_ || !arithmetic || (!is_root && !innerValue(graph_, v, 1, captured_))) return leaf(v);
    if (nodes_.size() >= kMaxNodes || v->type.dtype != ir::DType::kFloat32) return std::nullopt;
    nodes_.push_back(node);
    const std::string& op = node->op_type;
    if (op == "Neg") {
      auto a = expandValue(node->input(0), false);
      return a ? std::optional(scaled(*a, -1)) : std::nullopt;
    }
    if (op == "Pow") {  // by a small non-negative integer
      std::optional<double> e = scalarConstant(node->input(1));
      auto a = expandValue(node->input(0), false);
      if (!a || !e || *e != std::floor(*e) || *e < 0 || *e > kMaxDegree) return std::nullopt;
      Polynomial p{{{0, 0}, 1.0}};
      for (int i = 0; i < static_cast<int>(*e); ++i) {
        auto next = product(p, *a);
        if (!next) return std::nullopt;
        p = std::move(*next);
      }
      return p;
    }
    auto a = expandValue(node->input(0), false);
    auto b = expandValue(node->input(1), false);
    if (!a || !b) return std::nullopt;
    if (op == "Add") return *a + *b;
    if (op == "Sub") return *a + scaled(*b, -1);
    if (op == "Mul") return product(*a, *b);
    std::optional<double> divisor = constantTerm(*b);  // Div by a constant only
    if (!divisor || *divisor == 0) return std::nullopt;
    return scaled(*a, 1 / *divisor);
  }

  // A value the match reads from outside: x, which all leaves must be.
  std::optional<Polynomial> leaf(ir::Value* v) {
    if (v->type.dtype != ir::DType::kFloat32 || (x_ && v != x_)) return std::nullopt;
    x_ = v;
    return Polynomial{{{1, 0}, 1.0}};
  }

  const ir::Graph& graph_;
  const std::unordered_set<const ir::Value*>& captured_;
  const ir::Value* t_;
  ir::Value* x_ = nullptr;
  std::vector<ir::Node*> nodes_;
  std::unordered_map<const ir::Value*, Polynomial> expanded_;
};

struct GeluMatch : SubgraphMatch {
  ir::Value* x = nullptr;
};

class RecognizeGelu final : public Pass {
 public:
  std::string_view name() const override { return "recognize-gelu"; }
  std::string_view summary() const override {
    return "turn GELU's tanh approximation written out in Mul/Add/Pow/Tanh into one Gelu(approximate=\"tanh\")";
  }

  Expected<bool> run(ir::Model& model) override {
    captured_ = capturedBySubgraphs(model.graph);
    return rewriteEach(model.graph, "Tanh", [&](ir::Node& tanh) {
      std::optional<GeluMatch> match = matchAt(model.graph, tanh);
      if (!match) return false;
      std::map<std::string, ir::Attribute> attributes;
      attributes["approximate"].kind = ir::Attribute::Kind::kString;
      attributes["approximate"].s = "tanh";
      replaceMatch(model.graph, *match, "Gelu", domainFor(model, kGeluSince), {match->x}, std::move(attributes));
      return true;
    });
  }

 private:
  std::optional<GeluMatch> matchAt(const ir::Graph& graph, ir::Node& tanh) const {
    const ir::Value* t = tanh.outputs[0];
    if (!t || !innerValue(graph, tanh.input(0), 1, captured_) || !innerValue(graph, t, 1, captured_))
      return std::nullopt;
    const double k = std::sqrt(2 / std::numbers::pi), c = 0.044715;
    Expansion argument(graph, captured_, nullptr);
    std::optional<Polynomial> u = argument.expand(tanh.input(0));
    if (!u || !argument.x() || !matches(*u, {{{1, 0}, k}, {{3, 0}, k * c}})) return std::nullopt;
    ir::Value* x = argument.x();
    const Polynomial gelu = {{{1, 0}, 0.5}, {{1, 1}, 0.5}};
    // The result: the first value along the chain of single readers after
    // the Tanh that expands to 0.5·x·(1 + t).
    ir::Value* y = tanh.outputs[0];
    for (size_t step = 0; step < kMaxNodes; ++step) {
      std::vector<ir::Node*> readers = graph.usersOf(y);
      if (readers.size() != 1 || readers[0]->outputs.empty() || !readers[0]->outputs[0]) return std::nullopt;
      y = readers[0]->outputs[0];
      Expansion result(graph, captured_, t);
      result.setX(x);
      std::optional<Polynomial> p = result.expand(y);
      if (!p) return std::nullopt;
      if (!matches(*p, gelu)) continue;
      for (const ir::Node* node : argument.nodes())
        if (!(node->outputs[0]->type == x->type)) return std::nullopt;
      for (const ir::Node* node : result.nodes())
        if (!(node->outputs[0]->type == x->type)) return std::nullopt;
      GeluMatch match;
      match.x = x;
      match.root = y->producer;
      match.inner = argument.nodes();
      match.inner.push_back(&tanh);
      for (ir::Node* node : result.nodes())
        if (node != match.root) match.inner.push_back(node);
      return match;
    }
    return std::nullopt;
  }

  std::unordered_set<const ir::Value*> captured_;
};

}  // namespace

std::unique_ptr<Pass> createRecognizeGelu() { return std::make_unique<RecognizeGelu>(); }

}  // namespace kiln::passes
