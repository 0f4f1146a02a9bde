// fold-constants: removes nodes whose every output is a known constant (shape
// inference evaluated them with the reference evaluator, or they are Constant
// nodes); the values live on as constants that later nodes read, and the
// lowering turns them into weights. Identical constants are then shared.
// Requires: shapes inferred (which propagates constants).
#include <algorithm>
#include <map>
#include <tuple>

#include "artifact_format.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

bool allOutputsConstant(const ir::Node& node) {
  bool any = false;
  for (const ir::Value* out : node.outputs) {
    if (!out) continue;
    if (!out->isConstant()) return false;
    any = true;
  }
  return any;
}

class FoldConstants final : public Pass {
 public:
  std::string_view name() const override { return "fold-constants"; }
  std::string_view summary() const override { return "drop nodes whose outputs are all compile-time constants"; }
  Expected<bool> run(ir::Model& model) override {
    std::vector<ir::Node*> folded;
    for (const auto& node : model.graph.nodes())
      if (allOutputsConstant(*node)) folded.push_back(node.get());
    for (ir::Node* node : folded) model.graph.eraseNode(node);
    bool deduped = dedupConstants(model.graph);
    if (!folded.empty()) model.graph.removeUnusedValues();
    return !folded.empty() || deduped;
  }

 private:
  // Constants with the same dtype, shape and bytes become one value.
  static bool dedupConstants(ir::Graph& graph) {
    std::map<std::tuple<uint64_t, ir::DType, std::vector<int64_t>>, std::vector<ir::Value*>> groups;
    for (const auto& v : graph.values()) {
      if (!v->isConstant() || v->constant->dtype() == ir::DType::kString) continue;
      auto bytes = v->constant->bytes();
      uint64_t hash = artifact::hashBytes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
      groups[{hash, v->constant->dtype(), v->constant->dims()}].push_back(v.get());
    }
    bool changed = false;
    for (auto& [key, values] : groups) {
      ir::Value* keep = values.front();
      for (size_t i = 1; i < values.size(); ++i) {
        ir::Value* dup = values[i];
        auto a = keep->constant->bytes(), b = dup->constant->bytes();
        if (a.size() != b.size() || !std::equal(a.begin(), a.end(), b.begin())) continue;
        bool is_output = std::find(graph.outputs.begin(), graph.outputs.end(), dup) != graph.outputs.end();
        if (is_output || graph.usersOf(dup).empty()) continue;
        graph.replaceAllUses(dup, keep);
        changed = true;
      }
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> createFoldConstants() { return std::make_unique<FoldConstants>(); }

}  // namespace kiln::passes
