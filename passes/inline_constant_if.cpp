// inline-constant-if: an If whose condition is known at compile time is
// replaced by the nodes of the branch it takes, moved into the enclosing
// graph (their values renamed apart from the graph's own), and an Identity
// per output that keeps the If's output values, names and readers
// (remove-no-ops drops those Identities where it can). The other branch is
// dropped with the If.
// Requires: shapes inferred (the condition's value propagated).
// Branches that hold subgraphs of their own are left as they are: their
// captures would have to be rewritten too; they still run as control flow.
#include <map>
#include <set>

#include "passes/pass.h"

namespace kiln::passes {
namespace {

bool hasSubgraphs(const ir::Graph& graph) {
  for (const auto& node : graph.nodes())
    for (const auto& [key, attr] : node->attributes)
      if (!attr.graphs.empty()) return true;
  return false;
}

class InlineConstantIf final : public Pass {
 public:
  std::string_view name() const override { return "inline-constant-if"; }
  std::string_view summary() const override { return "replace an If with a compile-time condition by its branch"; }

  Expected<bool> run(ir::Model& model) override {
    bool changed = false;
    std::vector<ir::Node*> ifs;
    for (const auto& node : model.graph.nodes())
      if (node->op_type == "If" && node->domain.empty()) ifs.push_back(node.get());
    for (ir::Node* node : ifs) changed |= inlineIf(model.graph, *node);
    if (changed) KILN_RETURN_IF_ERROR(model.graph.sortTopologically());
    return changed;
  }

 private:
  static bool inlineIf(ir::Graph& graph, ir::Node& node) {
    const ir::Value* cond = node.input(0);
    if (!cond || !cond->isConstant() || cond->constant->elementCount() != 1) return false;
    const ir::Attribute* attr = node.attribute(cond->constant->intAt(0) ? "then_branch" : "else_branch");
    if (!attr || attr->graphs.empty()) return false;
    const ir::Graph& branch = *attr->graphs[0];
    if (hasSubgraphs(branch) || branch.outputs.size() != node.outputs.size()) return false;
    std::map<const ir::Value*, ir::Value*> moved;  // branch value -> its copy in `graph`
    auto copyOf = [&](ir::Value* v) -> ir::Value* {
      if (!v) return nullptr;
      if (auto it = moved.find(v); it != moved.end()) return it->second;
      bool own = std::any_of(branch.values().begin(), branch.values().end(),
                             [&](const auto& p) { return p.get() == v; });
      if (!own) return v;  // an outer value the branch reads
      ir::Value* copy = graph.addValue(freshName(graph, node.name + "/" + v->name), v->type);
      copy->constant = v->constant;
      return moved[v] = copy;
    };
    for (const auto& inner : branch.nodes()) {
      ir::Node* copy = graph.addNode(inner->op_type, freshNodeName(graph, node.name + "/" + inner->name));
      copy->domain = inner->domain;
      copy->attributes = inner->attributes;
      for (ir::Value* in : inner->inputs) copy->inputs.push_back(copyOf(in));
      for (size_t i = 0; i < inner->outputs.size(); ++i) {
        ir::Value* out = copyOf(inner->outputs[i]);
        if (out) {
          out->producer = copy;
          out->producer_output = static_cast<int>(i);
        }
        copy->outputs.push_back(out);
      }
    }
    std::vector<std::pair<ir::Value*, ir::Value*>> results;  // If output, branch result
    for (size_t i = 0; i < node.outputs.size(); ++i)
      results.push_back({node.outputs[i], copyOf(branch.outputs[i])});
    std::string name = node.name;
    graph.eraseNode(&node);
    for (auto [out, source] : results) {
      if (!out) continue;
      ir::Node* forward = graph.addNode("Identity", freshNodeName(graph, name + "/" + out->name));
      forward->inputs = {source};
      forward->outputs = {out};
      out->producer = forward;
      out->producer_output = 0;
    }
    return true;
  }

  static std::string freshName(const ir::Graph& graph, const std::string& base) {
    std::string name = base;
    for (int k = 1; graph.findValue(name); ++k) name = base + "_" + std::to_string(k);
    return name;
  }

  static std::string freshNodeName(const ir::Graph& graph, const std::string& base) {
    std::set<std::string> taken;
    for (const auto& n : graph.nodes()) taken.insert(n->name);
    std::string name = base;
    for (int k = 1; taken.count(name); ++k) name = base + "_" + std::to_string(k);
    return name;
  }
};

}  // namespace

std::unique_ptr<Pass> createInlineConstantIf() { return std::make_unique<InlineConstantIf>(); }

}  // namespace kiln::passes
