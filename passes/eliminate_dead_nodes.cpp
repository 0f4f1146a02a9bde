// eliminate-dead-nodes: removes nodes none of whose outputs reach a graph
// output, then the values nothing refers to any more.
// Requires: node order topological.
#include "passes/pass.h"

namespace kiln::passes {
namespace {

class EliminateDeadNodes final : public Pass {
 public:
  std::string_view name() const override { return "eliminate-dead-nodes"; }
  std::string_view summary() const override { return "remove nodes whose results are never used"; }
  Expected<bool> run(ir::Model& model) override {
    size_t removed = model.graph.removeDeadNodes();
    if (removed) model.graph.removeUnusedValues();
    return removed > 0;
  }
};

}  // namespace

std::unique_ptr<Pass> createEliminateDeadNodes() { return std::make_unique<EliminateDeadNodes>(); }

}  // namespace kiln::passes
