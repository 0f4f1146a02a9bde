// remove-no-ops: drops nodes whose output is their first input unchanged —
// Identity; Reshape, Flatten, Squeeze, Unsqueeze, Expand and Tile to the same
// shape (also through a chain of such reshapes, so Unsqueeze→Squeeze pairs
// cancel); Transpose by the identity permutation; Cast to the same type;
// Dropout in inference with its mask unused; Pad by zeros; Slice covering the
// whole tensor with unit steps; Concat of one input. Readers then read the
// input; a graph output keeps its name (the input's producer produces it).
// Requires: shapes inferred.
#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "passes/pass.h"
#include "passes/value_uses.h"

namespace kiln::passes {
namespace {

bool sameType(const ir::Value* a, const ir::Value* b) {
  if (!a || !b || a->type.dtype != b->type.dtype || !a->type.shape || !b->type.shape) return false;
  auto da = ir::knownDims(*a->type.shape), db = ir::knownDims(*b->type.shape);
  return da && db && *da == *db;
}

std::optional<std::vector<int64_t>> constantInts(const ir::Node& node, size_t i) {
  const ir::Value* v = node.input(i);
  if (!v || !v->isConstant()) return std::nullopt;
  return v->constant->toInts();
}

bool allEqual(const std::vector<int64_t>& values, int64_t x) {
  return std::all_of(values.begin(), values.end(), [&](int64_t v) { return v == x; });
}

// Given a node and the model's opset for it, the value it forwards unchanged,
// or nullptr. The caller has checked that input 0 and output 0 share a type.
using NoOpRule = std::function<ir::Value*(const ir::Node&, int64_t opset)>;

ir::Value* first(const ir::Node& node, int64_t) { return node.input(0); }

bool isReshapeLike(const ir::Node* node) {
  static const std::set<std::string> kOps = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  return node && node->domain.empty() && kOps.count(node->op_type);
}

// A reshape to the same shape, or back to the shape before a reshape chain.
ir::Value* reshapeChain(const ir::Node& node, int64_t) {
  if (sameType(node.input(0), node.outputs[0])) return node.input(0);
  ir::Value* source = node.input(0);
  while (source && isReshapeLike(source->producer)) {
    source = source->producer->input(0);
    if (sameType(source, node.outputs[0])) return source;
  }
  return nullptr;
}

const std::map<std::string, NoOpRule>& rules() {
  static const std::map<std::string, NoOpRule> kRules = {
      {"Identity", first},
      {"Reshape", reshapeChain},
      {"Flatten", reshapeChain},
      {"Squeeze", reshapeChain},
      {"Unsqueeze", reshapeChain},
      {"Expand", first},
      {"Tile", first},
      {"Concat", [](const ir::Node& n, int64_t) { return n.inputs.size() == 1 ? n.input(0) : nullptr; }},
      {"Transpose",
       [](const ir::Node& n, int64_t) -> ir::Value* {
         const ir::Attribute* perm = n.attribute("perm");
         if (!n.input(0)->type.shape) return nullptr;
         size_t rank = n.input(0)->type.shape->size();
         if (!perm) return rank <= 1 ? n.input(0) : nullptr;
         std::vector<int64_t> identity(perm->ints.size());
         std::iota(identity.begin(), identity.end(), 0);
         return perm->ints == identity ? n.input(0) : nullptr;
       }},
      {"Cast", first},  // same dtype in and out, checked by the caller
      {"CastLike", first},
      {"Dropout",
       [](const ir::Node& n, int64_t opset) -> ir::Value* {
         if (opset < 7) {
           const ir::Attribute* is_test = n.attribute("is_test");
           if (!is_test || is_test->i == 0) return nullptr;
         }
         if (n.input(2)) {  // training_mode
           auto training = constantInts(n, 2);
           if (!training || !allEqual(*training, 0)) return nullptr;
         }
         return n.input(0);
       }},
      {"Pad",
       [](const ir::Node& n, int64_t opset) -> ir::Value* {
         std::optional<std::vector<int64_t>> pads;
         if (opset < 11) {
           if (const ir::Attribute* a = n.attribute("pads")) pads = a->ints;
         } else {
           pads = constantInts(n, 1);
         }
         return pads && allEqual(*pads, 0) ? n.input(0) : nullptr;
       }},
      {"Slice",
       [](const ir::Node& n, int64_t opset) -> ir::Value* {
         if (opset < 10 || !n.input(4)) return n.input(0);
         auto steps = constantInts(n, 4);
         return steps && allEqual(*steps, 1) ? n.input(0) : nullptr;
       }},
  };
  return kRules;
}

// Outputs after the first (Dropout's mask) must be unused.
bool extraOutputsUnused(const ir::Graph& graph, const ir::Node& node) {
  for (size_t i = 1; i < node.outputs.size(); ++i) {
    const ir::Value* out = node.outputs[i];
    if (out && (isGraphOutput(graph, out) || !graph.usersOf(out).empty())) return false;
  }
  return true;
}

class RemoveNoOps final : public Pass {
 public:
  std::string_view name() const override { return "remove-no-ops"; }
  std::string_view summary() const override { return "drop nodes that return their input unchanged"; }
  Expected<bool> run(ir::Model& model) override {
    ir::Graph& graph = model.graph;
    auto captured = capturedBySubgraphs(graph);
    std::vector<ir::Node*> nodes, removed;
    for (const auto& node : graph.nodes()) nodes.push_back(node.get());
    for (ir::Node* node : nodes) {
      auto rule = rules().find(node->op_type);
      if (!node->domain.empty() || rule == rules().end() || node->outputs.empty()) continue;
      ir::Value* out = node->outputs[0];
      if (!out || !node->input(0) || out->isConstant() || !extraOutputsUnused(graph, *node)) continue;
      ir::Value* source = rule->second(*node, model.opsetFor(node->domain));
      if (!source || !sameType(source, out)) continue;
      if (!forwardValue(graph, out, source, captured)) continue;
      removed.push_back(node);
    }
    for (ir::Node* node : removed) graph.eraseNode(node);
    if (!removed.empty()) graph.removeUnusedValues();
    return !removed.empty();
  }
};

}  // namespace

std::unique_ptr<Pass> createRemoveNoOps() { return std::make_unique<RemoveNoOps>(); }

}  // namespace kiln::passes
