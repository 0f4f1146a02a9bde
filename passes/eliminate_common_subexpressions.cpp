// eliminate-common-subexpressions: a node with the same op, domain, inputs
// (the same values) and attributes as an earlier node computes the same
// results; its readers read the earlier node's outputs and it is dropped.
// Walking in topological order makes chains of duplicates collapse in one
// run, and the kept node is always the first, so the result is deterministic.
// Skipped: ops with random results, nodes with subgraphs, and duplicates
// whose outputs are graph outputs or captured by a subgraph.
// Requires: node order topological.
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "passes/pass.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

bool isRandom(const ir::Node& node) {
  static const std::set<std::string> kRandom = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                                "RandomUniformLike", "Multinomial", "Bernoulli"};
  return kRandom.count(node.op_type) > 0;
}

void writeTensor(std::ostream& os, const ir::Tensor& t) {
  os << static_cast<int>(t.dtype()) << '[';
  for (int64_t d : t.dims()) os << d << ',';
  os << ']';
  auto bytes = t.bytes();
  os.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  for (const std::string& s : t.strings()) os << s.size() << ':' << s;
}

// The node's identity as a string: op, domain, inputs and attributes; nullopt
// for nodes never merged.
std::optional<std::string> nodeKey(const ir::Node& node) {
  if (isRandom(node)) return std::nullopt;
  std::ostringstream os;
  os << node.domain << '|' << node.op_type << '|';
  for (const ir::Value* in : node.inputs) os << static_cast<const void*>(in) << ',';
  os << '|';
  for (const ir::Value* out : node.outputs) os << (out ? '1' : '0');
  for (const auto& [name, a] : node.attributes) {
    if (!a.graphs.empty()) return std::nullopt;
    uint32_t f_bits;
    std::memcpy(&f_bits, &a.f, sizeof(f_bits));
    os << '|' << name << '=' << static_cast<int>(a.kind) << ':' << a.i << ':' << f_bits << ':' << a.s.size() << a.s;
    for (int64_t v : a.ints) os << ',' << v;
    os << ';';
    for (float v : a.floats) {
      std::memcpy(&f_bits, &v, sizeof(f_bits));
      os << ',' << f_bits;
    }
    os << ';';
    for (const std::string& s : a.strings) os << s.size() << ':' << s;
    if (a.kind == ir::Attribute::Kind::kTensor) writeTensor(os, a.t);
    for (const ir::Tensor& t : a.tensors) writeTensor(os, t);
  }
  return os.str();
}

class EliminateCommonSubexpressions final : public Pass {
 public:
  std::string_view name() const override { return "eliminate-common-subexpressions"; }
  std::string_view summary() const override { return "merge nodes computing the same op on the same inputs"; }
  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    auto captured = capturedBySubgraphs(graph);
    std::map<std::string, ir::Node*> first;
    std::vector<ir::Node*> duplicates;
    std::vector<ir::Node*> nodes;
    for (const auto& node : graph.nodes()) nodes.push_back(node.get());
    for (ir::Node* node : nodes) {
      auto key = nodeKey(*node);  // inputs already point at the kept nodes' outputs
      if (!key) continue;
      auto [it, inserted] = first.emplace(*key, node);
      if (inserted || !replaceable(graph, *node, captured)) continue;
      for (size_t i = 0; i < node->outputs.size(); ++i)
        if (node->outputs[i]) graph.replaceAllUses(node->outputs[i], it->second->outputs[i]);
      duplicates.push_back(node);
    }
    for (ir::Node* node : duplicates) graph.eraseNode(node);
    if (!duplicates.empty()) graph.removeUnusedValues();
    return !duplicates.empty();
  }

 private:
  static bool replaceable(const ir::Graph& graph, const ir::Node& node,
                          const std::unordered_set<const ir::Value*>& captured) {
    for (const ir::Value* out : node.outputs)
      if (out && (isGraphOutput(graph, out) || captured.count(out))) return false;
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createEliminateCommonSubexpressions() {
  return std::make_unique<EliminateCommonSubexpressions>();
}

}  // namespace kiln::passes
